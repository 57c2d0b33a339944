"""Ticket events across processes on PostgreSQL: each process relays the events its own units of work
published (after commit) on the ``bookbag_events`` channel, and republishes other processes' events on its
in-process bus, so a ``ticketEvents`` subscriber on process B sees changes committed through process A.

Queue updates do not depend on this (they use the transactional ``bookbag_queue`` signal and version
checks); ticket events are best-effort like the in-process bus: an event is relayed after its commit, and a
process that dies between the commit and the relay loses that one notification, never the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime

import psycopg

from workflow.live.bus import EventBus, TicketEvent
from workflow.live.pg_listener import libpq_conninfo

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "bookbag_events"
MAX_PAYLOAD = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def encode(event: TicketEvent, origin: str) -> str:
    body: dict[str, object] = {
        "o": origin,
        "k": event.kind,
        "m": event.merchant_id,
        "t": event.ticket_id,
        "a": event.at.isoformat(),
        "q": event.queue_changed,
        "d": event.data,
    }
    text = json.dumps(body, default=str, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD:
        body["d"] = {"truncated": True}
        text = json.dumps(body, default=str, separators=(",", ":"))
    return text


def decode(payload: str) -> tuple[str, TicketEvent]:
    body = json.loads(payload)
    event = TicketEvent(
        kind=str(body["k"]),
        merchant_id=str(body["m"]),
        ticket_id=body.get("t"),
        data=dict(body.get("d") or {}),
        at=datetime.fromisoformat(body["a"]),
        queue_changed=bool(body.get("q", True)),
    )
    return str(body["o"]), event


class EventRelay:
    """``relay.attach()`` once, then ``await relay.run()`` until cancelled."""

    def __init__(self, bus: EventBus, database_url: str, *, max_backoff: float = 5.0) -> None:
        self._bus = bus
        self._conninfo = libpq_conninfo(database_url)
        self._origin = secrets.token_hex(8)
        self._max_backoff = max_backoff
        self._local = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self.listening = asyncio.Event()
        self.relayed = 0
        self.received = 0

    def attach(self) -> None:
        self._bus.add_listener(self._on_local)

    def _on_local(self, event: TicketEvent) -> None:
        if getattr(self._local, "republishing", False):
            return  # another process's event: it was relayed by its own process
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: shutting down
            loop.call_soon_threadsafe(self._enqueue, encode(event, self._origin))

    def _enqueue(self, payload: str) -> None:
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("event relay outbox full; dropping an event")

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(self._reconnecting(self._send), self._reconnecting(self._listen))
        finally:
            self._loop = None

    async def _reconnecting(self, work: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.1
        while True:
            try:
                await work()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event relay connection lost (%s); reconnecting in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(self._max_backoff, backoff * 2)

    async def _send(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            while True:
                payload = await self._outbox.get()
                await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, payload))
                self.relayed += 1

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(f'LISTEN "{EVENTS_CHANNEL}"')
            self.listening.set()
            try:
                async for note in conn.notifies():
                    try:
                        origin, event = decode(note.payload)
                    except (ValueError, KeyError, TypeError):
                        log.warning("ignoring a malformed event notification")
                        continue
                    if origin == self._origin:
                        continue
                    self.received += 1
                    self._local.republishing = True
                    try:
                        self._bus.publish(event)
                    finally:
                        self._local.republishing = False
            finally:
                self.listening.clear()
