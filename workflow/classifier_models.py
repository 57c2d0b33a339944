"""Each merchant's own classifier models: training in the background, the safety gate, promotion, rollback,
and which model classifies a merchant's new tickets.

An admin starts a training run (`start_training`): a ``queued`` row. The process's `ModelTrainer` (one
thread, one training at a time) claims queued rows, trains a candidate from the shipped seed set plus the
merchant's corrected tickets (`classifier.candidates`), writes its progress on the row as it goes and stores
the packed model with its side-by-side report (``ready``) or the reason it failed (``failed``). Nothing
goes live until an admin promotes a ready model; the gate's verdict is re-read against the margins in force
then, and a candidate compared with a model that is no longer the active one must be trained again.
Rollback returns to the model that was active before (in the end the shipped one). New tickets are
classified by their merchant's active model (`classify`), loaded once into the bounded `ModelCache` on
`WorkflowServices.models`; a merchant without one gets the shipped model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

import classifier
from classifier.candidates import Correction, gate, load_packed, train_candidate, train_in_child
from classifier.dataset import LabelledTicket
from storage.db import Database
from storage.tables import ClassificationCorrection, ClassifierActive, ClassifierModel, Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.queue import lock_queue
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role

log = logging.getLogger(__name__)


class ModelStatus(StrEnum):
    """Where a merchant's model is: queued → training → ready or failed; a promoted ready model is active, the
    one it replaced retired, a rolled-back one rolled_back."""

    QUEUED = "queued"
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"
    ACTIVE = "active"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


QUEUED, TRAINING, READY, FAILED = (
    ModelStatus.QUEUED,
    ModelStatus.TRAINING,
    ModelStatus.READY,
    ModelStatus.FAILED,
)
ACTIVE, RETIRED, ROLLED_BACK = ModelStatus.ACTIVE, ModelStatus.RETIRED, ModelStatus.ROLLED_BACK
IN_PROGRESS = (QUEUED.value, TRAINING.value)
# A training whose row has not been touched for this long died with its process.
STALE_AFTER = timedelta(minutes=10)
# While training, the row's heartbeat is written at least this often (seconds).
HEARTBEAT_SECONDS = 60.0


# --- serving -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveModel:
    model_id: str
    model_version: str


@cache
def _active_models_query() -> Any:
    # Built once (as the ingest path's statements are): three columns, no ORM objects.
    table: Any = ClassifierActive.__table__  # type: ignore[attr-defined]
    return sa_select(table.c.merchant_id, table.c.model_id, table.c.model_version).where(
        table.c.merchant_id.in_(bindparam("merchant_ids", expanding=True))
    )


def active_models(session: Session, merchant_ids: Sequence[str]) -> dict[str, ActiveModel]:
    """The merchants' active models (merchants on the shipped model are absent): one read by primary key."""
    if not merchant_ids:
        return {}
    rows = session.execute(_active_models_query(), {"merchant_ids": list(merchant_ids)})
    return {merchant_id: ActiveModel(model_id, version) for merchant_id, model_id, version in rows}


def model_for(session: Session, services: WorkflowServices, merchant_id: str) -> classifier.Classifier:
    """The model classifying the merchant's new tickets now."""
    pointer = active_models(session, [merchant_id]).get(merchant_id)
    return services.classifier if pointer is None else _loaded(session, services, pointer.model_id)


def classify(
    session: Session, services: WorkflowServices, items: Sequence[tuple[str, classifier.TicketInput]]
) -> list[classifier.Prediction]:
    """Predictions for (merchant id, ticket) pairs, each by its merchant's active model: one read of the
    merchants' active models, one classifier call per model."""
    if not items:
        return []
    pointers = active_models(session, sorted({m for m, _ in items}))
    if not pointers:
        return services.classifier.predict_batch([t for _, t in items])
    by_model: dict[str, list[int]] = {}
    for i, (merchant_id, _) in enumerate(items):
        pointer = pointers.get(merchant_id)
        by_model.setdefault(pointer.model_id if pointer else "", []).append(i)
    out: list[classifier.Prediction | None] = [None] * len(items)
    for model_id, indexes in by_model.items():
        model = _loaded(session, services, model_id) if model_id else services.classifier
        for i, prediction in zip(indexes, model.predict_batch([items[i][1] for i in indexes]), strict=True):
            out[i] = prediction
    return [p for p in out if p is not None]


def _packed(session: Session, model_id: str) -> bytes:
    packed = session.exec(select(ClassifierModel.model).where(ClassifierModel.id == model_id)).first()
    if not packed:
        raise classifier.ClassifierError(f"model {model_id} has no stored model")
    return packed


def _loaded(session: Session, services: WorkflowServices, model_id: str) -> classifier.Classifier:
    def load() -> classifier.Classifier:
        return load_packed(
            _packed(session, model_id), confidence_threshold=services.classifier.confidence_threshold
        )

    try:
        return services.models.get(model_id, load)
    except classifier.ClassifierError:
        # A model that cannot be loaded must not stop ingest: the shipped model answers (and its version is
        # what the ticket records).
        # Remembered in the cache, so the process does not retry (and log) on every ticket.
        log.exception("merchant model %s could not be loaded; the shipped model classifies", model_id)
        return services.models.get(model_id, lambda: services.classifier)


# --- reading ---------------------------------------------------------------------------------------------------


def list_models(session: Session, principal: Principal, *, first: int = 50) -> list[ClassifierModel]:
    principal.require(Role.ADMIN)
    query = (
        select(ClassifierModel)
        .options(defer(ClassifierModel.model))  # type: ignore[arg-type]
        .where(ClassifierModel.merchant_id == principal.merchant_id)
        .order_by(col(ClassifierModel.number).desc())
        .limit(max(1, min(first, 200)))
    )
    return list(session.exec(query))


def get_model(
    session: Session, principal: Principal, model_id: str, *, for_update: bool = False
) -> ClassifierModel:
    principal.require(Role.ADMIN)
    query = (
        select(ClassifierModel)
        .options(defer(ClassifierModel.model))  # type: ignore[arg-type]
        .where(ClassifierModel.id == model_id, ClassifierModel.merchant_id == principal.merchant_id)
    )
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise not_found("classifier model")
    return row


def active_version(session: Session, services: WorkflowServices, merchant_id: str) -> str:
    pointer = active_models(session, [merchant_id]).get(merchant_id)
    return services.classifier.info.version if pointer is None else pointer.model_version


def corrections(session: Session, merchant_id: str, *, limit: int) -> list[Correction]:
    """The merchant's corrected tickets (the newest `limit`), each with the labels its latest correction left
    and the ticket's metadata, oldest first."""
    latest = (
        select(ClassificationCorrection.ticket_id, func.max(ClassificationCorrection.created_at).label("at"))
        .where(ClassificationCorrection.merchant_id == merchant_id)
        .group_by(col(ClassificationCorrection.ticket_id))
        .order_by(func.max(ClassificationCorrection.created_at).desc())
        .limit(limit)
    )
    newest = {ticket_id: at for ticket_id, at in session.execute(latest)}
    if not newest:
        return []
    rows = session.exec(
        select(ClassificationCorrection)
        .where(
            ClassificationCorrection.merchant_id == merchant_id,
            col(ClassificationCorrection.ticket_id).in_(list(newest)),
        )
        .order_by(col(ClassificationCorrection.created_at), col(ClassificationCorrection.id))
    )
    labels: dict[str, dict[str, Any]] = {}
    for c in rows:  # the newest correction of a ticket wins, field by field
        row = labels.setdefault(
            c.ticket_id,
            {"subject": c.subject, "body": c.body, "category": c.old_category, "priority": c.old_priority},
        )
        row["subject"], row["body"] = c.subject, c.body
        if c.category:
            row["category"] = c.category
        if c.priority:
            row["priority"] = c.priority
    tickets = {
        t.id: t
        for t in session.exec(
            select(Ticket).where(Ticket.merchant_id == merchant_id, col(Ticket.id).in_(list(newest)))
        )
    }
    out = []
    for ticket_id, fields in labels.items():
        ticket = tickets.get(ticket_id)
        if not fields["category"] or not fields["priority"]:
            continue
        text = classifier.TicketInput(
            subject=fields["subject"] or "",
            body=fields["body"] or "",
            channel=ticket.channel if ticket else None,
            customer_vip=ticket.customer_vip if ticket else None,
            customer_lifetime_value=ticket.customer_lifetime_value if ticket else None,
            customer_order_count=ticket.customer_order_count if ticket else None,
            order_total=ticket.order_total if ticket else None,
            order_financial_status=ticket.order_financial_status if ticket else None,
            order_fulfillment_status=ticket.order_fulfillment_status if ticket else None,
        )
        if not text.text.strip():
            continue  # redacted (forget_customer): nothing left to learn from
        labelled = LabelledTicket(
            text, str(fields["category"]), str(fields["priority"]), f"correction/{ticket_id}"
        )
        out.append(Correction(ticket_id, newest[ticket_id], labelled))
    return sorted(out, key=lambda c: (c.corrected_at, c.ticket_id))


# --- admin mutations -------------------------------------------------------------------------------------------


def start_training(session: Session, services: WorkflowServices, principal: Principal) -> ClassifierModel:
    """Queue a training run of the merchant's next model; the process's trainer picks it up after commit."""
    principal.require(Role.ADMIN)
    merchant_id = principal.merchant_id
    lock_queue(session, merchant_id)  # one admin operation on the merchant's models at a time (PostgreSQL)
    now = services.clock()
    _expire_stale(session, now, merchant_id)
    running = session.exec(
        select(ClassifierModel.number).where(
            ClassifierModel.merchant_id == merchant_id, col(ClassifierModel.status).in_(IN_PROGRESS)
        )
    ).first()
    if running is not None:
        raise DomainError(
            ErrorCode.CONFLICT, f"model #{running} is still training; wait for it to finish", "merchant"
        )
    n_corrected = session.exec(
        select(func.count(func.distinct(ClassificationCorrection.ticket_id))).where(
            ClassificationCorrection.merchant_id == merchant_id
        )
    ).one()
    if not n_corrected:
        raise invalid("no corrected tickets yet: correct some classifications first (correctClassification)")
    number = (
        session.exec(
            select(func.max(ClassifierModel.number)).where(ClassifierModel.merchant_id == merchant_id)
        ).one()
        or 0
    ) + 1
    row = ClassifierModel(
        merchant_id=merchant_id,
        number=number,
        status=QUEUED,
        progress="queued",
        baseline_version=active_version(session, services, merchant_id),
        created_by=principal.key_id,
        created_at=now,
        heartbeat_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        principal,
        kind="classifier.training_started",
        after={"model_id": row.id, "number": number, "corrected_tickets": int(n_corrected)},
        model_version=row.baseline_version,
    )
    return row


def promote(
    session: Session, services: WorkflowServices, principal: Principal, model_id: str
) -> ClassifierModel:
    """Make a ready candidate the merchant's active model, if its safety gate passes under the margins in force."""
    principal.require(Role.ADMIN)
    lock_queue(session, principal.merchant_id)
    row = get_model(session, principal, model_id, for_update=True)
    if row.status != READY:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"model #{row.number} is {row.status}; only a ready model can be promoted",
            "id",
        )
    current = active_version(session, services, principal.merchant_id)
    if row.baseline_version != current:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"model #{row.number} was compared with {row.baseline_version}, but {current} is active now; "
            "train again to compare with it",
            "id",
        )
    verdict = gate(row.report, services.learning.margins)
    if not verdict["passed"]:
        raise DomainError(
            ErrorCode.MODEL_GATE_FAILED,
            f"model #{row.number} is worse than the active model: " + "; ".join(verdict["reasons"]),
            "id",
            details=verdict,
        )
    now = services.clock()
    pointer = session.get(ClassifierActive, principal.merchant_id, with_for_update=True)
    previous_id = pointer.model_id if pointer is not None else None
    if pointer is not None:
        old = session.get(ClassifierModel, pointer.model_id)
        if old is not None:
            old.status = RETIRED
            session.add(old)
        pointer.model_id, pointer.model_version, pointer.activated_at = row.id, row.model_version or "", now
    else:
        pointer = ClassifierActive(
            merchant_id=principal.merchant_id,
            model_id=row.id,
            model_version=row.model_version or "",
            activated_at=now,
        )
    session.add(pointer)
    row.status, row.promoted_at, row.previous_model_id = ACTIVE, now, previous_id
    session.add(row)
    audit.record(
        session,
        principal,
        kind="classifier.model_promoted",
        before={"model_version": current},
        after={"model_id": row.id, "number": row.number, "model_version": row.model_version, "gate": verdict},
        model_version=row.model_version,
    )
    return row


def rollback(session: Session, services: WorkflowServices, principal: Principal) -> ClassifierModel:
    """Take the active model out of service; the one active before it (or the shipped model) serves again.
    Returns the rolled-back model."""
    principal.require(Role.ADMIN)
    lock_queue(session, principal.merchant_id)
    pointer = session.get(ClassifierActive, principal.merchant_id, with_for_update=True)
    if pointer is None:
        raise DomainError(ErrorCode.CONFLICT, "the shipped model is active: there is nothing to roll back")
    row = session.get(ClassifierModel, pointer.model_id)
    assert row is not None  # a foreign key
    previous = session.get(ClassifierModel, row.previous_model_id) if row.previous_model_id else None
    row.status = ROLLED_BACK
    session.add(row)
    if previous is not None:
        previous.status = ACTIVE
        session.add(previous)
        pointer.model_id, pointer.model_version = previous.id, previous.model_version or ""
        pointer.activated_at = services.clock()
        session.add(pointer)
        now_serving = previous.model_version or ""
    else:
        session.delete(pointer)
        now_serving = services.classifier.info.version
    audit.record(
        session,
        principal,
        kind="classifier.model_rolled_back",
        before={"model_id": row.id, "number": row.number, "model_version": row.model_version},
        after={"model_version": now_serving},
        model_version=now_serving,
    )
    return row


def _expire_stale(session: Session, now: datetime, merchant_id: str | None = None) -> None:
    """Trainings whose process died (no progress for STALE_AFTER) are marked failed."""
    query = (
        update(ClassifierModel)
        .where(
            col(ClassifierModel.status).in_(IN_PROGRESS),
            col(ClassifierModel.heartbeat_at) < now - STALE_AFTER,
        )
        .values(status=FAILED, error="interrupted: the training process stopped", progress="interrupted")
    )
    if merchant_id is not None:
        query = query.where(col(ClassifierModel.merchant_id) == merchant_id)
    session.execute(query)


# --- the background trainer -----------------------------------------------------------------------------------


@dataclass
class _Claimed:
    id: str
    merchant_id: str
    number: int


class ModelTrainer:
    """One thread per process that trains queued models one at a time, off the request path.

    `wake()` after queueing; it starts the thread on first use. Queued rows of any process are claimed with a
    conditional UPDATE, so two processes never train the same row."""

    def __init__(
        self,
        db: Database,
        services: WorkflowServices,
        on_progress: Callable[[str], None] | None = None,
        *,
        in_child: bool = False,
    ) -> None:
        self.db = db
        self.services = services
        # Train in a spawned child process (the server: its request threads keep the GIL), or in this thread.
        self.in_child = in_child
        self.on_progress = on_progress  # also told each progress message (the CLI prints them)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.trained = 0

    def wake(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="bookbag-model-trainer", daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.clear()
            try:
                if self.run_once():
                    continue
            except Exception:
                log.exception("model trainer: unexpected failure")
            self._wake.wait(30.0)

    def run_once(self, model_id: str | None = None) -> bool:
        """Claim and train one queued model (the oldest, or `model_id`); False when none was waiting."""
        claimed = self._claim(model_id)
        if claimed is None:
            return False
        self._train(claimed)
        return True

    def _claim(self, model_id: str | None = None) -> _Claimed | None:
        now = self.services.clock()
        with self.db.unit_of_work() as session:
            _expire_stale(session, now)
            candidates = session.exec(
                select(ClassifierModel.id, ClassifierModel.merchant_id, ClassifierModel.number)
                .where(
                    ClassifierModel.status == QUEUED, *([ClassifierModel.id == model_id] if model_id else [])
                )
                .order_by(col(ClassifierModel.created_at))
                .limit(5)
            ).all()
            for model_id, merchant_id, number in candidates:
                claimed = session.execute(
                    update(ClassifierModel)
                    .where(col(ClassifierModel.id) == model_id, col(ClassifierModel.status) == QUEUED)
                    .values(status=TRAINING, heartbeat_at=now, progress="reading the corrected tickets")
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return _Claimed(model_id, merchant_id, number)
        return None

    def _train(self, claimed: _Claimed) -> None:
        services, config = self.services, self.services.learning

        def progress(message: str) -> None:  # a few dozen messages a run
            self._update(claimed.id, progress=message[:300], heartbeat_at=services.clock())
            if self.on_progress is not None:
                self.on_progress(message)

        # Between messages (fitting the text features or a linear scorer can take minutes on a busy machine)
        # the row's heartbeat still moves, so other processes never take the run for a dead one.
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                try:
                    self._update(claimed.id, heartbeat_at=services.clock())
                except Exception:
                    log.warning("model trainer: heartbeat not written", exc_info=True)

        beat = threading.Thread(target=heartbeat, name="bookbag-model-heartbeat", daemon=True)
        beat.start()
        try:
            prefix = f"merchant-v{claimed.number}"
            with self.db.read_only() as session:
                rows = corrections(session, claimed.merchant_id, limit=config.max_corrections)
                if self.in_child:
                    pointer = active_models(session, [claimed.merchant_id]).get(claimed.merchant_id)
                    packed = _packed(session, pointer.model_id) if pointer else None
                else:
                    active = model_for(session, services, claimed.merchant_id)
            if self.in_child:
                serving = packed if packed is not None else services.classifier
                candidate = train_in_child(
                    rows,
                    serving,
                    version_prefix=prefix,
                    config=config,
                    progress=progress,
                    confidence_threshold=services.classifier.confidence_threshold,
                )
            else:
                candidate = train_candidate(
                    rows, active, version_prefix=prefix, config=config, progress=progress
                )
        except classifier.ClassifierError as exc:
            self._finish(claimed, status=FAILED, error=str(exc))
            return
        except Exception:
            log.exception("training merchant model %s failed", claimed.id)
            self._finish(claimed, status=FAILED, error="internal error while training (see the server log)")
            return
        finally:
            done.set()
            beat.join()
        self._finish(claimed, status=READY, candidate=candidate)
        self.trained += 1

    def _update(self, model_id: str, **values: Any) -> None:
        with self.db.unit_of_work() as session:
            session.execute(
                update(ClassifierModel)
                .where(col(ClassifierModel.id) == model_id, col(ClassifierModel.status) == TRAINING)
                .values(**values)
            )

    def _finish(
        self, claimed: _Claimed, *, status: str, error: str | None = None, candidate: Any = None
    ) -> None:
        now = self.services.clock()
        with self.db.unit_of_work() as session:
            row = session.get(ClassifierModel, claimed.id, with_for_update=True)
            if row is None or row.status != TRAINING:
                return  # expired as stale meanwhile: its outcome is not recorded
            row.status, row.heartbeat_at, row.trained_at = status, now, now
            row.error = error
            if candidate is not None:
                row.model, row.model_bytes = candidate.packed, len(candidate.packed)
                row.model_version, row.report = candidate.version, candidate.report
                row.progress = "ready: " + (
                    "the gate passes" if candidate.report["gate"]["passed"] else "the gate refuses it"
                )
            else:
                row.progress = "failed"
            session.add(row)
            audit.record(
                session,
                Principal.system(claimed.merchant_id),
                kind="classifier.model_trained" if status == READY else "classifier.training_failed",
                after={
                    "model_id": row.id,
                    "number": row.number,
                    "status": status,
                    "error": error,
                    "gate": candidate.report["gate"] if candidate is not None else None,
                },
                model_version=row.model_version,
            )
