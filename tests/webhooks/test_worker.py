"""``bookbag webhooks dispatch`` (``bookbag.webhook_worker.run_worker``): the dispatcher apart from the API,
on both back-ends. The API here writes the outbox only (no lifespan, so no inline dispatcher); the worker,
with its own database engine as a separate process would have, delivers. On PostgreSQL its poll is set to
a minute, so only the outbox transaction's NOTIFY can wake it; on SQLite it polls (0.1 s by default)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlmodel import select
from standardwebhooks import Webhook

from bookbag.settings import Settings
from bookbag.webhook_worker import SQLITE_POLL_SECONDS, poll_seconds, run_worker
from storage.db import Database
from storage.tables import WebhookDelivery
from tests.api.conftest import Api, create_ticket, make_settings
from tests.conftest import MerchantKeys
from tests.webhooks.conftest import Receiver
from tests.webhooks.test_webhooks_api import register


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def listening(database: Database) -> bool:
    with database.read_only() as session:
        count = session.exec(
            text(  # type: ignore[call-overload]
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"bookbag_webhooks\"'"
            )
        ).one()
    return bool(count[0])


async def test_the_worker_delivers_what_the_api_commits(
    api: Api, database: Database, database_url: str, merchant: MerchantKeys, receiver: Receiver
) -> None:
    _, secret = await register(api, merchant, receiver.url, ["ticket.created"])
    overrides: dict[str, object] = {"webhook_allow_private": True, "webhook_dispatcher": "off"}
    if database.is_postgres:
        overrides["webhook_poll_seconds"] = 60  # only NOTIFY wakes it within the test
    settings = make_settings(database_url, **overrides)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        if database.is_postgres:
            await wait_until(lambda: listening(database))
        await asyncio.sleep(0.2)  # its first claim round (nothing due) is over
        ticket_ids = [(await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"] for _ in range(3)]
        received = await asyncio.to_thread(receiver.wait_for, 3, 20.0)  # well under the minute
        payloads = [Webhook(secret).verify(r.body, r.headers) for r in received]
        assert sorted(p["data"]["ticket_id"] for p in payloads) == sorted(ticket_ids)

        def recorded() -> bool:
            with database.read_only() as session:
                statuses = session.exec(
                    select(WebhookDelivery.status).where(WebhookDelivery.merchant_id == merchant.merchant_id)
                ).all()
            return sorted(statuses) == ["delivered"] * 3

        await wait_until(recorded)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


def test_the_dispatcher_setting_reads_inline_off_and_the_old_booleans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for given, expected in [("inline", "inline"), ("off", "off"), ("true", "inline"), ("false", "off")]:
        monkeypatch.setenv("BOOKBAG_WEBHOOK_DISPATCHER", given)
        assert Settings().webhook_dispatcher == expected
    monkeypatch.setenv("BOOKBAG_WEBHOOK_DISPATCHER", "sometimes")
    with pytest.raises(ValidationError, match="inline"):
        Settings()


def test_the_worker_polls_sqlite_often_unless_told(database: Database, database_url: str) -> None:
    told = make_settings(database_url, webhook_poll_seconds=2.5)
    assert poll_seconds(told, database) == 2.5
    default = make_settings(database_url)
    assert poll_seconds(default, database) == (
        default.webhook_poll_seconds if database.is_postgres else SQLITE_POLL_SECONDS
    )
