"""A merchant's own classifier models: versions with their status and progress, the side-by-side comparison
with the model that was active when each was trained, the safety gate's verdict, and the admin payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.enums import Priority
from schema.payloads import Payload
from storage import tables
from workflow.classifier_models import ModelStatus

strawberry.enum(
    ModelStatus,
    name="ClassifierModelStatus",
    description="QUEUED → TRAINING → READY or FAILED; an admin promotes a READY model to ACTIVE (the one it "
    "replaces becomes RETIRED); a rollback marks the active one ROLLED_BACK.",
)


@strawberry.type(description="A model's figures on one held-out slice (category; priority where measured).")
class ClassifierFigures:
    macro_f1: float = strawberry.field(description="Category macro-F1.")
    accuracy: float = strawberry.field(description="Category accuracy.")
    ece: float = strawberry.field(description="Expected calibration error of the category confidence.")
    priority_macro_f1: float | None = strawberry.field(
        description="Priority macro-F1 (null where the slice has no priorities)."
    )
    priority_accuracy: float | None = strawberry.field(
        description="Priority accuracy (null where the slice has no priorities)."
    )
    priority_ece: float | None = strawberry.field(
        description="Expected calibration error of the priority confidence (null where not measured)."
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierFigures:
        return cls(
            macro_f1=float(data["macro_f1"]),
            accuracy=float(data["accuracy"]),
            ece=float(data["ece"]),
            priority_macro_f1=data.get("priority_macro_f1"),
            priority_accuracy=data.get("priority_accuracy"),
            priority_ece=data.get("priority_ece"),
        )


@strawberry.type(description="One category's F1 for the active model and the candidate, side by side.")
class ClassifierClassScore:
    label: str = strawberry.field(description="The category.")
    support: int = strawberry.field(description="Held-out tickets of this category.")
    active_f1: float = strawberry.field(description="The active model's F1 on this category.")
    candidate_f1: float = strawberry.field(description="The candidate's F1 on this category.")


@strawberry.type(description="The active model and the candidate measured on the same held-out tickets.")
class ClassifierSlice:
    name: str = strawberry.field(
        description="`merchant`: the merchant's newest corrected tickets (held out by time, never trained on); "
        "`seed`: the shipped seed set's hold-out."
    )
    rows: int = strawberry.field(description="Held-out tickets in the slice.")
    active: ClassifierFigures = strawberry.field(description="The active model's figures.")
    candidate: ClassifierFigures = strawberry.field(description="The candidate's figures.")
    per_class: list[ClassifierClassScore] = strawberry.field(description="Per category, both models' F1.")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ClassifierSlice:
        old, new = data["active"]["per_class"], data["candidate"]["per_class"]
        labels = sorted(set(old) | set(new))
        return cls(
            name=name,
            rows=int(data["rows"]),
            active=ClassifierFigures.from_dict(data["active"]),
            candidate=ClassifierFigures.from_dict(data["candidate"]),
            per_class=[
                ClassifierClassScore(
                    label=label,
                    support=int((old.get(label) or new.get(label) or {}).get("support", 0)),
                    active_f1=float((old.get(label) or {}).get("f1", 0.0)),
                    candidate_f1=float((new.get(label) or {}).get("f1", 0.0)),
                )
                for label in labels
            ],
        )


@strawberry.type(
    description="A held-out corrected ticket the candidate answers differently from the active model."
)
class ClassifierChange:
    ticket_id: strawberry.ID = strawberry.field(description="The held-out ticket.")
    expected_category: str = strawberry.field(description="What the agents' correction says.")
    expected_priority: Priority | None = strawberry.field(
        description="The priority the ticket has (null if unknown)."
    )
    active_category: str = strawberry.field(description="The active model's category.")
    active_confidence: float = strawberry.field(description="The active model's category confidence.")
    active_priority: Priority = strawberry.field(description="The active model's priority.")
    candidate_category: str = strawberry.field(description="The candidate's category.")
    candidate_confidence: float = strawberry.field(description="The candidate's category confidence.")
    candidate_priority: Priority = strawberry.field(description="The candidate's priority.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierChange:
        return cls(
            ticket_id=strawberry.ID(str(data["ticket_id"])),
            expected_category=str(data["expected_category"]),
            expected_priority=Priority(data["expected_priority"]) if data.get("expected_priority") else None,
            active_category=str(data["active_category"]),
            active_confidence=float(data["active_confidence"]),
            active_priority=Priority(data["active_priority"]),
            candidate_category=str(data["candidate_category"]),
            candidate_confidence=float(data["candidate_confidence"]),
            candidate_priority=Priority(data["candidate_priority"]),
        )


@strawberry.type(
    description="The safety gate's verdict as the model was trained (promotion checks it again)."
)
class ClassifierGate:
    passed: bool = strawberry.field(description="Whether the candidate may be promoted.")
    reasons: list[str] = strawberry.field(
        description="Each figure where the candidate is worse by more than its margin."
    )
    margins: JSON = strawberry.field(description="The margins applied: how much worse each figure may be.")


@strawberry.type(description="One of the merchant's own classifier models.")
class ClassifierModel:
    id: strawberry.ID = strawberry.field(description="The model's id.")
    number: int = strawberry.field(description="The merchant's model number: 1, 2, 3…")
    status: ModelStatus = strawberry.field(description="Where the model stands.")
    model_version: str | None = strawberry.field(
        description="What tickets it classifies record as `modelVersion` (and the `classifier.model_version` fact)."
    )
    baseline_version: str | None = strawberry.field(
        description="The model it was compared with (active then)."
    )
    progress: str = strawberry.field(description="The training's last progress line.")
    error: str | None = strawberry.field(description="Why training failed (null otherwise).")
    created_at: datetime = strawberry.field(description="When training was asked for.")
    trained_at: datetime | None = strawberry.field(description="When training finished.")
    promoted_at: datetime | None = strawberry.field(description="When it was made the active model.")
    model_bytes: int = strawberry.field(description="The stored model's size in bytes.")
    trained_on_seed_rows: int = strawberry.field(description="Seed-set rows it was trained on.")
    trained_on_corrections: int = strawberry.field(
        description="The merchant's corrected tickets it was trained on."
    )
    gate: ClassifierGate | None = strawberry.field(
        description="The safety gate's verdict (null until evaluated)."
    )
    slices: list[ClassifierSlice] = strawberry.field(description="The comparison on each held-out slice.")
    changes: list[ClassifierChange] = strawberry.field(description="Held-out tickets whose answer changes.")
    changes_total: int = strawberry.field(
        description="How many held-out tickets' answers change (`changes` lists the first)."
    )
    report: JSON = strawberry.field(description="The whole comparison report as stored.")

    @classmethod
    def from_model(cls, row: tables.ClassifierModel) -> ClassifierModel:
        report: dict[str, Any] = dict(row.report or {})
        gate = report.get("gate")
        slices = report.get("slices") or {}
        trained = report.get("train_rows") or {}
        return cls(
            id=strawberry.ID(row.id),
            number=row.number,
            status=ModelStatus(row.status),
            model_version=row.model_version,
            baseline_version=row.baseline_version,
            progress=row.progress,
            error=row.error,
            created_at=row.created_at,
            trained_at=row.trained_at,
            promoted_at=row.promoted_at,
            model_bytes=row.model_bytes,
            trained_on_seed_rows=int(trained.get("seed", 0)),
            trained_on_corrections=int(trained.get("corrections", 0)),
            gate=ClassifierGate(
                passed=bool(gate["passed"]), reasons=list(gate["reasons"]), margins=JSON(gate["margins"])
            )
            if gate
            else None,
            slices=[
                ClassifierSlice.from_dict(name, slices[name])
                for name in ("merchant", "seed")
                if slices.get(name)
            ],
            changes=[ClassifierChange.from_dict(c) for c in report.get("changes") or []],
            changes_total=int(report.get("changes_total", 0)),
            report=JSON(report),
        )


@strawberry.type(description="The answer to a classifier-model mutation: the model, or errors.")
class ClassifierModelPayload(Payload):
    model: ClassifierModel | None = strawberry.field(default=None, description="The model acted on.")
