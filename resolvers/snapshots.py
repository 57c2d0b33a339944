"""JSON snapshots of mutation results: what an idempotency record stores and replays verbatim."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)


def dump(row: SQLModel | None) -> dict[str, Any] | None:
    return None if row is None else row.model_dump(mode="json")


def load(model: type[M], data: Any) -> M | None:
    if data is None:
        return None
    return model.model_validate(data)
