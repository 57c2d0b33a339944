"""Waking webhook dispatchers in other processes (PostgreSQL).

A dispatcher is woken at once by the commits of its own process (``EventBus.outbox_written``). Commits of
other processes — the API when the dispatcher runs apart (``bookbag webhooks dispatch``), or the other
``bookbag serve --workers`` — reach it on PostgreSQL through ``pg_notify('bookbag_webhooks', merchant)``,
sent by :func:`notify_outbox` inside the transaction that wrote outbox rows (so only committed rows wake
anyone; PostgreSQL folds a transaction's equal notifications into one). :func:`listen` is the listening
side for a process without the server's LISTEN connection (``workflow.live.pg_listener.QueueListener`` takes
the channel in its ``also`` otherwise). On SQLite nothing crosses processes: a dispatcher in its own
process finds new rows by polling (``webhook_poll_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import text
from sqlmodel import Session

log = logging.getLogger(__name__)

WEBHOOKS_CHANNEL = "bookbag_webhooks"


def notify_outbox(session: Session, merchant_id: str) -> None:
    """Inside the writing transaction: tell other processes' dispatchers (PostgreSQL; nothing on SQLite)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_notify(:channel, :merchant)"),
            {"channel": WEBHOOKS_CHANNEL, "merchant": merchant_id},
        )


async def listen(
    conninfo: str, wake: Callable[[], None], *, min_backoff: float = 0.1, max_backoff: float = 5.0
) -> None:
    """``wake()`` on every notification, and on every (re)connection (what was committed while nobody
    listened was signalled to nobody); reconnects with backoff. Runs until cancelled."""
    backoff = min_backoff
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f'LISTEN "{WEBHOOKS_CHANNEL}"')
                backoff = min_backoff
                wake()
                async for _note in conn.notifies():
                    wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook listener lost its connection (%s); reconnecting in %.1fs", exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
