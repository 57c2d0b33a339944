"""A merchant's own classifier models for admins: list and read them (with their comparison), start a
training run, promote a candidate through the safety gate, roll back. Each calls
``workflow.classifier_models`` and maps the result."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlmodel import Session

from resolvers import roles
from resolvers.runner import mutate, query
from schema.classifier_models import ClassifierModel, ClassifierModelPayload
from schema.common import UserError
from schema.tickets import Info
from workflow import classifier_models as service
from workflow.errors import DomainError
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal


async def classifier_models(
    info: Info,
    first: Annotated[int, strawberry.argument(description="How many, newest first (at most 200).")] = 50,
) -> list[ClassifierModel]:
    """The merchant's own models, newest first (`first` at most 200). Admin only."""
    rows = await query(info.context, roles.ADMINS, lambda s, p: service.list_models(s, p, first=first))
    return [ClassifierModel.from_model(r) for r in rows]


async def classifier_model(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The model.")]
) -> ClassifierModel | None:
    """One of the merchant's models, or null (also for another merchant's id). Admin only."""

    def read(session: Session, principal: Principal) -> Any:
        try:
            return service.get_model(session, principal, str(id))
        except DomainError as exc:
            if exc.code.value == "NOT_FOUND":
                return None
            raise

    row = await query(info.context, roles.ADMINS, read)
    return ClassifierModel.from_model(row) if row is not None else None


async def _payload(
    info: Info, snapshot: dict[str, Any] | None, error: DomainError | None
) -> ClassifierModelPayload:
    if error is not None or snapshot is None:
        return ClassifierModelPayload(errors=[UserError.from_domain(error)] if error else [])
    row = await query(info.context, roles.ADMINS, lambda s, p: service.get_model(s, p, snapshot["id"]))
    return ClassifierModelPayload(model=ClassifierModel.from_model(row))


async def train_classifier_model(info: Info) -> ClassifierModelPayload:
    """Start training the merchant's next model in the background (from its corrected tickets plus the shipped
    seed set); follow it with `classifierModel(id)`. Admin only."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"id": service.start_training(session, services, principal).id}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="trainClassifierModel",
        payload={},
        idempotency_key=None,
        work=work,
    )
    trainer = info.context.runtime.trainer
    if error is None and trainer is not None:
        trainer.wake()
    return await _payload(info, snapshot, error)


async def promote_classifier_model(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The candidate to promote.")]
) -> ClassifierModelPayload:
    """Make a READY model the one classifying the merchant's new tickets; refused with MODEL_GATE_FAILED when
    it is worse than the active model beyond the gate's margins. Admin only."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"id": service.promote(session, services, principal, str(id)).id}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="promoteClassifierModel",
        payload={},
        idempotency_key=None,
        work=work,
    )
    return await _payload(info, snapshot, error)


async def rollback_classifier_model(info: Info) -> ClassifierModelPayload:
    """Take the active model out of service: the one active before it (or the shipped model) classifies again.
    Returns the rolled-back model. Admin only."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"id": service.rollback(session, services, principal).id}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="rollbackClassifierModel",
        payload={},
        idempotency_key=None,
        work=work,
    )
    return await _payload(info, snapshot, error)
