"""A merchant's own candidate model: trained on the shipped seed set plus the merchant's corrected tickets,
compared side by side with the model serving now, and judged by a safety gate before it may go live.

The merchant's corrected tickets are split by time: the newest share is held out (never trained on) and
both models are measured on it and on the seed set's hold-out — macro-F1, accuracy, per-class F1 and the
expected calibration error of each task — and every held-out ticket whose answer changes is listed. The
gate (`gate`) refuses a candidate that is worse than the serving model by more than `GateMargins` on
either slice. Models travel as zip bytes (`pack_model` / `load_packed`), so a database row can hold them,
and loaded models are kept in a bounded LRU (`ModelCache`).
"""

from __future__ import annotations

import io
import math
import multiprocessing
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from classifier.dataset import LabelledTicket
from classifier.model import (
    CATEGORY_LINEAR,
    CATEGORY_MODEL,
    MANIFEST,
    PRIORITY_LINEAR,
    PRIORITY_MODEL,
    TEXT_FEATURES,
    Classifier,
)
from classifier.training import EvalReport, Progress, TrainConfig, evaluate, fit
from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES, ClassifierError

MODEL_FILES = frozenset(
    {MANIFEST, TEXT_FEATURES, CATEGORY_MODEL, PRIORITY_MODEL, CATEGORY_LINEAR, PRIORITY_LINEAR}
)
# A packed model larger than this is refused when unpacking (the shipped model is about 3.2 MB unpacked).
MAX_UNPACKED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class GateMargins:
    """How much worse than the serving model a candidate may be on a held-out slice and still go live."""

    macro_f1: float = 0.02
    accuracy: float = 0.03
    ece: float = 0.03

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ClassifierError(f"gate margin {name} must be within [0, 1], got {value}")


@dataclass(frozen=True)
class LearningConfig:
    """Bounds and settings of a merchant's training run."""

    # Seed rows trained on (a fixed sample of whole scenarios; None: every row) and seed hold-out rows measured.
    seed_rows: int | None = None
    seed_holdout_rows: int | None = None
    # The newest corrected tickets read (older ones are left out).
    max_corrections: int = 5000
    # Share of the corrected tickets, newest first, held out to compare the models (at least `min_holdout`
    # of them; with fewer than 2 × min_holdout corrections only the seed hold-out is compared).
    holdout_fraction: float = 0.25
    min_holdout: int = 2
    # Each training correction is repeated this many times: a handful of corrections must be able to move a
    # model trained on thousands of seed rows.
    correction_weight: int = 3
    train: TrainConfig = field(default_factory=TrainConfig)
    margins: GateMargins = field(default_factory=GateMargins)
    # Held-out tickets whose answer changes, listed in the report (the count is always complete).
    max_changes_listed: int = 200

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ClassifierError("holdout_fraction must be within (0, 1)")
        if self.min_holdout < 1 or self.correction_weight < 1 or self.max_corrections < 1:
            raise ClassifierError("min_holdout, correction_weight and max_corrections must be at least 1")


@dataclass(frozen=True)
class Correction:
    """A merchant's corrected ticket as training data: the labels agents settled on, and when."""

    ticket_id: str
    corrected_at: datetime
    row: LabelledTicket


@dataclass(frozen=True)
class Candidate:
    version: str
    packed: bytes
    report: dict[str, Any]


def split_by_time(
    corrections: Sequence[Correction], config: LearningConfig
) -> tuple[list[Correction], list[Correction]]:
    """(train, held out): the newest `holdout_fraction` of the corrected tickets are held out."""
    ordered = sorted(corrections, key=lambda c: (c.corrected_at, c.ticket_id))
    if len(ordered) < 2 * config.min_holdout:
        return ordered, []
    n_hold = max(config.min_holdout, math.ceil(len(ordered) * config.holdout_fraction))
    return ordered[:-n_hold], ordered[-n_hold:]


@cache
def _seed(holdout: bool) -> tuple[LabelledTicket, ...]:
    from classifier.default import load_seed
    from classifier.seed.compose import HOLDOUT_FILE, TRAIN_FILE

    return tuple(load_seed(HOLDOUT_FILE if holdout else TRAIN_FILE))


def seed_rows(*, holdout: bool, cap: int | None, seed: int = 13) -> list[LabelledTicket]:
    """The shipped seed set's training (or hold-out) rows; with a cap, whole scenarios drawn at random with a
    fixed seed until the cap is reached (translations of one scenario stay together)."""
    rows = list(_seed(holdout))
    if cap is None or len(rows) <= cap:
        return rows
    by_group: dict[str, list[LabelledTicket]] = {}
    for row in rows:
        by_group.setdefault(row.group or "", []).append(row)
    names = sorted(by_group)
    out: list[LabelledTicket] = []
    for i in np.random.RandomState(seed).permutation(len(names)):
        if len(out) >= cap:
            break
        out += by_group[names[int(i)]]
    return out[:cap]


def train_candidate(
    corrections: Sequence[Correction],
    active: Classifier,
    *,
    version_prefix: str,
    config: LearningConfig,
    progress: Progress | None = None,
) -> Candidate:
    """Train a candidate on the seed set plus the older corrections, compare it with `active` on the newest
    corrections and the seed hold-out, and pack it. Raises ClassifierError for data it cannot train on."""
    say = progress or (lambda _msg: None)
    if not corrections:
        raise ClassifierError("no corrected tickets to learn from")
    train_part, held = split_by_time(corrections, config)
    seed_train = seed_rows(holdout=False, cap=config.seed_rows, seed=config.train.seed)
    seed_holdout = seed_rows(holdout=True, cap=config.seed_holdout_rows, seed=config.train.seed)
    say(
        f"training on {len(seed_train)} seed rows and {len(train_part)} corrected tickets; "
        f"{len(held)} corrected tickets held out"
    )
    rows = list(seed_train)
    for c in train_part:  # one group per ticket: its copies never straddle a split
        rows += [replace(c.row, group=f"correction/{c.ticket_id}")] * config.correction_weight
    model = fit(rows, config.train, labels=DEFAULT_CATEGORIES, priorities=DEFAULT_PRIORITIES, progress=say)
    say("comparing with the serving model")
    with tempfile.TemporaryDirectory(prefix="bookbag-candidate-") as tmp:
        out = Path(tmp) / "model"
        info = model.save(
            out,
            version=None,  # <prefix>-<content hash>: no two models share a version
            version_prefix=version_prefix,
            data_hash="",
            metrics={"train_rows": len(rows), "train_seconds": round(model.seconds, 2)},
            extra={"config": asdict(config.train), "corrections_trained": len(train_part)},
        )
        packed = pack_model(out)
        candidate = Classifier.load(out, confidence_threshold=active.confidence_threshold)
    slices: dict[str, Any] = {"merchant": None, "seed": None}
    changes: list[dict[str, Any]] = []
    n_changes = 0
    if held:
        held_rows = [c.row for c in held]
        slices["merchant"] = _side_by_side(active, candidate, held_rows)
        before = active.predict_batch([r.ticket for r in held_rows])
        after = candidate.predict_batch([r.ticket for r in held_rows])
        for c, old, new in zip(held, before, after, strict=True):
            if (old.raw_category, old.priority) != (new.raw_category, new.priority):
                n_changes += 1
                if len(changes) < config.max_changes_listed:
                    changes.append(
                        {
                            "ticket_id": c.ticket_id,
                            "expected_category": c.row.category,
                            "expected_priority": c.row.priority,
                            "active_category": old.raw_category,
                            "active_confidence": round(old.raw_category_confidence, 4),
                            "active_priority": old.priority,
                            "candidate_category": new.raw_category,
                            "candidate_confidence": round(new.raw_category_confidence, 4),
                            "candidate_priority": new.priority,
                        }
                    )
    if seed_holdout:
        slices["seed"] = _side_by_side(active, candidate, seed_holdout)
    report = {
        "candidate_version": info.version,
        "baseline_version": active.info.version,
        "train_rows": {"seed": len(seed_train), "corrections": len(train_part)},
        "holdout_rows": {"merchant": len(held), "seed": len(seed_holdout)},
        "held_out_from": held[0].corrected_at.isoformat() if held else None,
        "slices": slices,
        "changes": changes,
        "changes_total": n_changes,
        "train_seconds": round(model.seconds, 2),
        "rounds": model.rounds,
        "model_bytes": len(packed),
    }
    report["gate"] = gate(report, config.margins)
    return Candidate(info.version, packed, report)


def train_in_child(
    corrections: Sequence[Correction],
    active: Classifier | bytes,
    *,
    version_prefix: str,
    config: LearningConfig,
    progress: Progress | None = None,
    confidence_threshold: float = 0.4,
) -> Candidate:
    """`train_candidate` in a spawned child process, so a server's threads keep the GIL while it trains.

    `active` is the serving model as loaded from a directory, or a merchant's packed model. Progress messages
    come back over a pipe; a ClassifierError in the child is raised here with its message. A packed model is
    loaded with `confidence_threshold`; a directory's model keeps its own."""
    say = progress or (lambda _msg: None)
    if isinstance(active, Classifier):
        if active.source_dir is None:
            raise ClassifierError("the serving model was not loaded from a directory")
        source: Path | bytes = active.source_dir
        threshold = active.confidence_threshold
    else:
        source, threshold = active, confidence_threshold
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_train_child,
        args=(sender, list(corrections), source, threshold, version_prefix, config),
        name="bookbag-model-training",
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        while True:
            try:
                kind, value = receiver.recv()
            except EOFError:
                raise ClassifierError(
                    f"the training process ended without a result (exit code {child.exitcode})"
                ) from None
            if kind == "progress":
                say(value)
            elif kind == "done":
                candidate: Candidate = value
                return candidate
            elif kind == "refused":
                raise ClassifierError(value)
            else:
                raise RuntimeError(f"the training process failed: {value}")
    finally:
        receiver.close()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()


def _train_child(
    sender: Any,
    corrections: list[Correction],
    source: Path | bytes,
    threshold: float,
    prefix: str,
    config: LearningConfig,
) -> None:
    try:
        if isinstance(source, bytes):
            active = load_packed(source, confidence_threshold=threshold)
        else:
            active = Classifier.load(source, confidence_threshold=threshold)
        result = train_candidate(
            corrections,
            active,
            version_prefix=prefix,
            config=config,
            progress=lambda message: sender.send(("progress", message)),
        )
        sender.send(("done", result))
    except ClassifierError as exc:
        sender.send(("refused", str(exc)))
    except Exception as exc:  # reported to the parent, which logs it
        sender.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def _side_by_side(
    active: Classifier, candidate: Classifier, rows: Sequence[LabelledTicket]
) -> dict[str, Any]:
    return {
        "rows": len(rows),
        "active": summarize(evaluate(active, rows)),
        "candidate": summarize(evaluate(candidate, rows)),
    }


def summarize(report: EvalReport) -> dict[str, Any]:
    """The figures a comparison shows: category macro-F1, accuracy, per-class F1 and ECE; priority likewise."""
    out: dict[str, Any] = {
        "macro_f1": report.category["macro_f1"],
        "accuracy": report.category["accuracy"],
        "ece": round(float(report.calibration["category"]["ece"]), 4),
        "per_class": {
            label: {"f1": c["f1"], "support": c["support"]}
            for label, c in report.category["per_class"].items()
            if c["support"] or c["f1"]
        },
        "priority_macro_f1": None,
        "priority_accuracy": None,
        "priority_ece": None,
    }
    if report.priority is not None:
        out["priority_macro_f1"] = report.priority["macro_f1"]
        out["priority_accuracy"] = report.priority["accuracy"]
        out["priority_ece"] = round(float(report.calibration["priority"]["ece"]), 4)
    return out


def gate(report: dict[str, Any], margins: GateMargins) -> dict[str, Any]:
    """{"passed", "reasons", "margins"}: a reason for each slice and figure where the candidate is worse than
    the serving model by more than its margin (F1 and accuracy lower, calibration error higher)."""
    reasons: list[str] = []
    for name, where in (
        ("merchant", "the merchant's newest corrected tickets"),
        ("seed", "the seed hold-out"),
    ):
        side = (report.get("slices") or {}).get(name)
        if not side:
            continue
        old, new = side["active"], side["candidate"]
        for task, prefix in (("category", ""), ("priority", "priority_")):
            for figure, margin, higher_is_better in (
                ("macro_f1", margins.macro_f1, True),
                ("accuracy", margins.accuracy, True),
                ("ece", margins.ece, False),
            ):
                a, c = old.get(prefix + figure), new.get(prefix + figure)
                if a is None or c is None:
                    continue
                loss = (a - c) if higher_is_better else (c - a)
                if loss > margin + 1e-9:
                    reasons.append(
                        f"{task} {figure.replace('_', '-')} on {where}: {c:.3f} vs {a:.3f} "
                        f"(worse by {loss:.3f}, more than the margin {margin:.3f})"
                    )
    return {"passed": not reasons, "reasons": reasons, "margins": asdict(margins)}


def pack_model(model_dir: Path) -> bytes:
    """The model directory's files as zip bytes (stored, not compressed twice: the files are mostly text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(MODEL_FILES):
            path = Path(model_dir) / name
            if path.is_file():
                archive.write(path, arcname=name)
    return buffer.getvalue()


def load_packed(packed: bytes, *, confidence_threshold: float = 0.4) -> Classifier:
    """A classifier from `pack_model` bytes; only the known file names are extracted."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(packed))
    except zipfile.BadZipFile as exc:
        raise ClassifierError(f"corrupt packed model: {exc}") from exc
    with archive, tempfile.TemporaryDirectory(prefix="bookbag-model-") as tmp:
        members = archive.infolist()
        if any(m.filename not in MODEL_FILES for m in members):
            raise ClassifierError("packed model holds unexpected files")
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ClassifierError("packed model is too large")
        for member in members:
            (Path(tmp) / member.filename).write_bytes(archive.read(member))
        model = Classifier.load(Path(tmp), confidence_threshold=confidence_threshold)
        model.source_dir = None  # the directory is gone with this block
        return model


class ModelCache:
    """Loaded merchant models by key (a model's id), least recently used dropped beyond `capacity`.

    Thread-safe; a model missing from the cache is loaded outside the lock by the caller's `load`."""

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise ClassifierError("the model cache needs room for at least one model")
        self.capacity = capacity
        self._models: OrderedDict[str, Classifier] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: str, load: Callable[[], Classifier]) -> Classifier:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = load()
        with self._lock:
            self.loads += 1
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return model

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)
