"""Per-request DataLoaders: every nested lookup of a page is one batched, merchant-scoped query."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TypeVar

from anyio import to_thread
from sqlmodel import Session
from strawberry.dataloader import DataLoader

from runtime.context import ApiRuntime
from storage.tables import ActionRequest, Agent, Message, Team, Ticket
from workflow import batch_reads as api_batches
from workflow.tickets.service import get_tickets_by_ids, messages_by_ticket_ids

K = str
V = TypeVar("V")


class Loaders:
    def __init__(self, runtime: ApiRuntime, merchant_id: str) -> None:
        self._runtime = runtime
        self._merchant_id = merchant_id

    def _batch(
        self, fetch: Callable[[Session, str, Sequence[str]], dict[str, V]], default: Callable[[], V | None]
    ) -> Callable[[list[str]], object]:
        # The loader must not refer back to ``self``: Loaders → DataLoader → this function → Loaders would be
        # a reference cycle, leaving every request's loaders, their cached futures and the rows in them to
        # the cyclic garbage collector (whose full passes then pause the server for tens of milliseconds).
        runtime = self._runtime
        db = runtime.db
        merchant_id = self._merchant_id

        async def load(keys: list[str]) -> list[V | None]:
            def work() -> dict[str, V]:
                with db.read_only() as session:
                    found = fetch(session, merchant_id, keys)
                    session.expunge_all()  # keep the rows loaded past read_only()'s rollback
                    return found

            async with runtime.fair.db_unit(merchant_id, "read"):
                found = await to_thread.run_sync(work, limiter=runtime.read_limiter)
            return [found.get(key, default()) for key in keys]

        return load

    @cached_property
    def ticket(self) -> DataLoader[str, Ticket | None]:
        return DataLoader(load_fn=self._batch(get_tickets_by_ids, lambda: None))  # type: ignore[arg-type]

    @cached_property
    def team(self) -> DataLoader[str, Team | None]:
        return DataLoader(load_fn=self._batch(api_batches.teams_by_ids, lambda: None))  # type: ignore[arg-type]

    @cached_property
    def agent(self) -> DataLoader[str, Agent | None]:
        return DataLoader(load_fn=self._batch(api_batches.agents_by_ids, lambda: None))  # type: ignore[arg-type]

    @cached_property
    def messages(self) -> DataLoader[str, list[Message]]:
        return DataLoader(load_fn=self._batch(messages_by_ticket_ids, list))  # type: ignore[arg-type]

    @cached_property
    def actions(self) -> DataLoader[str, list[ActionRequest]]:
        return DataLoader(load_fn=self._batch(api_batches.actions_by_ticket_ids, list))  # type: ignore[arg-type]

    @cached_property
    def agent_team_ids(self) -> DataLoader[str, list[str]]:
        return DataLoader(load_fn=self._batch(api_batches.team_ids_by_agent_ids, list))  # type: ignore[arg-type]

    @cached_property
    def key_name(self) -> DataLoader[str, str | None]:
        return DataLoader(load_fn=self._batch(api_batches.key_names_by_ids, lambda: None))  # type: ignore[arg-type]

    @cached_property
    def pending_count(self) -> DataLoader[str, int]:
        """Keyed by role: the role's approval inbox size."""
        return DataLoader(load_fn=self._batch(api_batches.pending_counts_by_roles, int))  # type: ignore[arg-type]
