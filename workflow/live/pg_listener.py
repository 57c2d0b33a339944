"""Cross-process queue signals on PostgreSQL: one LISTEN connection per process feeding the queue hub.

Writers run ``pg_notify('bookbag_queue', merchant_id)`` inside their transaction (``bump_queue_version``), so
a signal exists only for committed changes. This module holds the listening side: a psycopg 3 async
connection that turns each notification into ``hub.notify(merchant_id)``. When the connection drops it
reconnects with backoff and then runs the hub's safety check, because notifications sent while it was
away are lost for good and only the queue versions tell what was missed.

The same connection listens on further channels given as ``also`` (channel → handler of the payload), e.g.
``workflow.tenancy.merchants.KEYS_CHANNEL`` for key revocations: one LISTEN connection per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import psycopg
from sqlalchemy.engine import make_url

from storage.db import normalize_url
from workflow.live.queue_hub import QueueHub
from workflow.queue import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


def libpq_conninfo(database_url: str) -> str:
    """psycopg wants a libpq URL, not SQLAlchemy's ``postgresql+psycopg://``."""
    url = make_url(normalize_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class QueueListener:
    """``await listener.run()`` until cancelled; ``connected`` is set while LISTEN is active."""

    def __init__(
        self,
        hub: QueueHub,
        database_url: str,
        *,
        channel: str = NOTIFY_CHANNEL,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        on_connect: Callable[[], Awaitable[object]] | None = None,
        also: Mapping[str, Callable[[str], object]] | None = None,
    ) -> None:
        self._hub = hub
        self._conninfo = libpq_conninfo(database_url)
        self._channel = channel
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._on_connect = on_connect or hub.safety_check
        self._also = dict(also or {})
        self.connected = asyncio.Event()
        self.connections = 0
        self.backend_pid: int | None = None

    async def run(self) -> None:
        backoff = self._min_backoff
        while True:
            try:
                await self._listen_once()
                backoff = self._min_backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("queue listener lost its connection (%s); reconnecting in %.1fs", exc, backoff)
            finally:
                self.connected.clear()
                self.backend_pid = None
            await asyncio.sleep(backoff)
            backoff = min(self._max_backoff, backoff * 2)

    async def _listen_once(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(f'LISTEN "{self._channel}"')
            for channel in self._also:
                await conn.execute(f'LISTEN "{channel}"')
            self.connections += 1
            self.backend_pid = conn.info.backend_pid
            self.connected.set()
            # Anything committed while we were not listening was signalled to nobody: compare versions.
            await self._on_connect()
            async for note in conn.notifies():
                if not note.payload:
                    continue
                if note.channel == self._channel:
                    self._hub.notify(note.payload)
                    continue
                handler = self._also.get(note.channel)
                if handler is not None:
                    try:
                        handler(note.payload)
                    except Exception:  # one handler's failure must not drop the LISTEN connection
                        log.exception("handling a %s notification failed", note.channel)
        raise ConnectionError("notification stream ended")
