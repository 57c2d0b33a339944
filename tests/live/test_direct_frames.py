"""The queueUpdates fan-out's direct frame writes (bookbag.ws.direct): the frame encoding equals what the
websockets library sends, the adapter finds uvicorn's websockets-sansio protocol behind Starlette's send in the
installed versions, a compressed connection falls back to the ASGI path, a slow connection is declined, and the
hub's push never lets a later snapshot overtake an earlier one."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from bookbag.app import create_app
from bookbag.settings import Settings
from bookbag.ws import direct as ws_direct
from storage.db import Database
from tests.conftest import MerchantKeys
from tests.waiting import eventually
from workflow.live.bus import EventBus
from workflow.live.queue_hub import QueueHub, feed_from_bus
from workflow.queue import QueueSnapshot
from workflow.services import WorkflowServices

from .helpers import write_ticket
from .servers import QUEUE_UPDATES, ThreadServer, WsClient, create_ticket

SUBSCRIPTION = "subscription { queueUpdates { version openCount stages { stage count } } }"


def websockets_encoding(payload: bytes) -> bytes:
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    protocol.send_frame(Frame(Opcode.TEXT, payload))
    return b"".join(protocol.data_to_send())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1000, 65535, 65536, 200_000])
def test_the_frame_is_byte_identical_to_what_websockets_sends(size: int) -> None:
    payload = (b'{"id":"1","type":"next","payload":' + b"x" * size)[:size]
    assert ws_direct.encode_text_frame(payload) == websockets_encoding(payload)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.buffered = 0

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


def fake_protocol(**overrides: Any) -> SimpleNamespace:
    writable = asyncio.Event()
    writable.set()
    fields: dict[str, Any] = {
        "transport": FakeTransport(),
        "writable": writable,
        "close_sent": False,
        "disconnected": False,
        "conn": SimpleNamespace(state=State.OPEN, extensions=[]),
    }
    return SimpleNamespace(**{**fields, **overrides})


async def test_the_writer_declines_slow_closing_and_closed_connections() -> None:
    protocol = fake_protocol()
    writer = ws_direct.DirectWriter(protocol)
    assert writer.write(b"a")
    await asyncio.sleep(0)  # sent at the end of the event loop's turn
    assert protocol.transport.written == [b"a"]

    protocol.transport.buffered = ws_direct.MAX_BUFFERED_BYTES + 1  # the client is not reading
    assert not writer.write(b"b")
    protocol.transport.buffered = 0
    protocol.writable.clear()  # uvicorn paused writing (transport above its high-water mark)
    assert not writer.write(b"c")
    protocol.writable.set()
    for change in ({"close_sent": True}, {"disconnected": True}):
        assert not ws_direct.DirectWriter(fake_protocol(**change)).write(b"d")
    closing = fake_protocol()
    closing.transport.closing = True
    assert not ws_direct.DirectWriter(closing).write(b"e")
    closed = fake_protocol(conn=SimpleNamespace(state=State.CLOSING, extensions=[]))
    assert not ws_direct.DirectWriter(closed).write(b"f")
    await asyncio.sleep(0)
    assert protocol.transport.written == [b"a"]


async def test_frames_of_one_turn_go_out_in_order_in_one_write_and_count_as_buffered() -> None:
    protocol = fake_protocol()
    writer = ws_direct.DirectWriter(protocol)
    assert writer.write(b"one") and writer.write(b"two") and writer.write(b"three")
    assert protocol.transport.written == []
    await asyncio.sleep(0)
    assert protocol.transport.written == [b"onetwothree"]

    # What waits for the end of the turn counts towards the slow-connection limit.
    big = b"x" * (ws_direct.MAX_BUFFERED_BYTES // 2 + 1)
    assert writer.write(big) and writer.write(big)
    assert not writer.write(b"over the limit")
    await asyncio.sleep(0)
    assert protocol.transport.written == [b"onetwothree", big + big]


async def test_frames_still_waiting_when_the_connection_starts_closing_are_dropped() -> None:
    for change in ({"close_sent": True}, {"disconnected": True}):
        protocol = fake_protocol()
        writer = ws_direct.DirectWriter(protocol)
        assert writer.write(b"late")
        for name, value in change.items():
            setattr(protocol, name, value)
        await asyncio.sleep(0)
        assert protocol.transport.written == []


def test_an_unknown_send_callable_gets_no_writer() -> None:
    async def send(_message: object) -> None:
        return None

    assert ws_direct.direct_writer(SimpleNamespace(_send=send)) is None
    assert ws_direct.direct_writer(object()) is None


@pytest.fixture
def make_server(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> Iterator[Callable[[bool], ThreadServer]]:
    running: list[ThreadServer] = []

    def make(ws_deflate: bool) -> ThreadServer:
        settings = Settings(
            env="test",
            database_url=database_url,
            run_migrations_on_start=False,
            queue_coalesce_seconds=0.05,
            scheduler_interval_seconds=0,
        )
        services = replace(loaded_services, bus=EventBus())
        server = ThreadServer(
            create_app(settings, services=services, database=database), ws_deflate=ws_deflate
        )
        running.append(server.__enter__())
        return server

    yield make
    for server in running:
        server.__exit__(None, None, None)


class WriteSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writers: list[ws_direct.DirectWriter | None] = []
        self.frames: list[tuple[bytes, bool]] = []
        self.buffered: list[tuple[ws_direct.DirectWriter, bool, int]] = []
        real_factory, real_write = ws_direct.direct_writer, ws_direct.DirectWriter.write

        def factory(websocket: Any) -> ws_direct.DirectWriter | None:
            writer = real_factory(websocket)
            self.writers.append(writer)
            return writer

        def write(writer: ws_direct.DirectWriter, frame: bytes) -> bool:
            written = real_write(writer, frame)
            self.frames.append((frame, written))
            self.buffered.append((writer, written, writer._transport.get_write_buffer_size()))
            return written

        monkeypatch.setattr("bookbag.ws.protocol.direct_writer", factory)
        monkeypatch.setattr(ws_direct.DirectWriter, "write", write)


async def next_with_open_count(ws: WsClient, sid: str, open_count: int) -> dict[str, Any]:
    while True:
        data: dict[str, Any] = (await ws.next_data(sid))["queueUpdates"]
        if data["openCount"] >= open_count:
            return data


async def test_snapshots_are_written_straight_to_an_uncompressed_connection(
    make_server: Callable[[bool], ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This is the installed uvicorn's behaviour the adapter relies on: if an upgrade changes the protocol's
    internals or Starlette's send wrapping, the writer is None here and this test fails (while production
    quietly takes the slower ASGI path)."""
    spy = WriteSpy(monkeypatch)
    server = make_server(False)
    merchant = make_merchant()
    clients = [await WsClient.open(server.ws, merchant.keys["viewer"]) for _ in range(3)]
    sids = []
    for ws in clients:
        await ws.ack()
        sids.append(await ws.subscribe(SUBSCRIPTION))
        assert (await ws.next_data(sids[-1]))["queueUpdates"]["openCount"] == 0
    await create_ticket(server.http, merchant.keys["partner"])
    for ws, sid in zip(clients, sids, strict=True):
        data = await next_with_open_count(ws, sid, 1)
        assert data["version"] >= 1 and len(data["stages"]) == 8
    assert len(spy.writers) == 3 and all(w is not None for w in spy.writers)
    written = [frame for frame, ok in spy.frames if ok]
    assert len(written) >= 3
    # One encoding for all three (same operation id "1", same document, same snapshot).
    assert written[-1] == written[-2] == written[-3]
    header = 2 + {126: 2, 127: 8}.get(written[-1][1], 0)
    message = json.loads(written[-1][header:])
    assert message["id"] == "1" and message["type"] == "next"
    for ws in clients:
        await ws.close()


async def test_a_compressed_connection_takes_the_asgi_path(
    make_server: Callable[[bool], ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = WriteSpy(monkeypatch)
    server = make_server(True)  # uvicorn negotiates permessage-deflate with the client
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe(SUBSCRIPTION)
    await ws.next_data(sid)
    await create_ticket(server.http, merchant.keys["partner"])
    assert (await next_with_open_count(ws, sid, 1))["openCount"] == 1
    assert spy.writers == [None] and spy.frames == []
    await ws.close()


async def test_a_declined_push_goes_to_the_iterator_and_nothing_overtakes_it(
    database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    bus = EventBus()
    hub = QueueHub(database, clock=lambda: datetime.now(UTC))
    feed_from_bus(hub, bus)
    hub.bind(asyncio.get_running_loop())
    merchant = make_merchant()
    accept = True
    pushed: list[int] = []
    delivered: list[tuple[str, int]] = []

    def push(snapshot: QueueSnapshot) -> bool:
        pushed.append(snapshot.version)
        if accept:
            delivered.append(("push", snapshot.version))
        return accept

    async def write() -> None:
        await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id)

    try:
        async with hub.subscribe(merchant.merchant_id, after_version=0, push=push) as snapshots:
            iterator = aiter(snapshots)
            await write()
            await eventually(lambda: delivered == [("push", 1)])

            accept = False  # e.g. the client's socket buffer is full
            await write()
            held = await asyncio.wait_for(anext(iterator), 5)  # the consumer now holds version 2 (sending)
            delivered.append(("iterator", held.version))
            accept = True
            calls = len(pushed)
            await write()
            await asyncio.sleep(0.5)  # a negative check: nothing may be pushed meanwhile
            assert len(pushed) == calls  # held: version 3 must not be pushed ahead of it
            following = await asyncio.wait_for(anext(iterator), 5)
            delivered.append(("iterator", following.version))
            waiting = asyncio.ensure_future(anext(iterator))  # done with it: the consumer asks for the next
            await write()
            await eventually(lambda: delivered[-1][0] == "push")
            assert not waiting.done()
            waiting.cancel()
        assert [kind for kind, _ in delivered] == ["push", "iterator", "iterator", "push"]
        versions = [version for _, version in delivered]
        assert versions == sorted(set(versions)) and versions[-1] == 4
    finally:
        await hub.close()


def client_frame(payload: bytes) -> bytes:
    """A masked client text frame (payload < 64 KiB)."""
    mask = os.urandom(4)
    size = len(payload)
    header = bytes((0x81, 0x80 | size)) if size < 126 else struct.pack("!BBH", 0x81, 0xFE, size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_texts(buffer: bytearray) -> list[bytes]:
    """Complete unmasked text frames at the start of ``buffer`` (consumed)."""
    texts = []
    while len(buffer) >= 2:
        size, start = buffer[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < start + size:
            break
        if buffer[0] & 0x0F == 0x1:
            texts.append(bytes(buffer[start : start + size]))
        del buffer[: start + size]
    return texts


async def test_a_client_that_stops_reading_is_skipped_not_queued_for(
    make_server: Callable[[bool], ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subscriber whose client stops reading: the direct write declines once its buffer is full, nothing
    more piles up for it (bounded by the buffer limit and one held snapshot), the others keep getting every
    change, and when it reads again it gets the newest version, in order."""
    spy = WriteSpy(monkeypatch)
    server = make_server(False)
    merchant = make_merchant()
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small kernel buffers: fills up sooner
    stalled.setblocking(False)
    await loop.sock_connect(stalled, ("127.0.0.1", server.port))
    await loop.sock_sendall(
        stalled,
        b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
    )
    received = bytearray()
    while b"\r\n\r\n" not in received:
        received += await asyncio.wait_for(loop.sock_recv(stalled, 65536), 10)
    assert received.startswith(b"HTTP/1.1 101 ")
    del received[: received.index(b"\r\n\r\n") + 4]
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {merchant.keys['viewer']}"}}
    subscribe = {"id": "s", "type": "subscribe", "payload": {"query": QUEUE_UPDATES}}
    await loop.sock_sendall(stalled, client_frame(json.dumps(init).encode()))
    await loop.sock_sendall(stalled, client_frame(json.dumps(subscribe).encode()))
    while b'"next"' not in received:  # the ack and the first snapshot
        received += await asyncio.wait_for(loop.sock_recv(stalled, 65536), 10)
    texts = server_texts(received)
    assert len(spy.writers) == 1 and spy.writers[0] is not None
    stalled_writer = spy.writers[0]
    # The server side of the stalled connection gets a small send buffer too.
    stalled_writer._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    reader = await WsClient.open(server.ws, merchant.keys["viewer"])
    await reader.ack()
    sid = await reader.subscribe(QUEUE_UPDATES)
    await reader.next_data(sid)
    created = 0
    while not any(w is stalled_writer and not ok for w, ok, _ in spy.buffered):
        assert created < 1500, "the stalled connection's buffer never filled"
        await create_ticket(server.http, merchant.keys["partner"])
        created += 1
        if created % 20 == 0:
            await next_with_open_count(reader, sid, created)  # the reading client keeps up all along
    for _ in range(20):  # more changes while it is stalled: they replace each other, they do not queue
        await create_ticket(server.http, merchant.keys["partner"])
        created += 1
    assert (await next_with_open_count(reader, sid, created))["openCount"] == created

    limit = ws_direct.MAX_BUFFERED_BYTES + max(len(frame) for frame, _ in spy.frames)
    assert max(size for w, _, size in spy.buffered if w is stalled_writer) <= limit
    assert stalled_writer._transport.get_write_buffer_size() <= limit + 65536  # + uvicorn's high-water mark

    # It reads again: the newest version arrives, and versions only ever went up.
    versions = [json.loads(t)["payload"]["data"]["queueUpdates"]["version"] for t in texts if b'"next"' in t]
    while not versions or versions[-1] < created:
        received += await asyncio.wait_for(loop.sock_recv(stalled, 65536), 10)
        versions += [
            json.loads(t)["payload"]["data"]["queueUpdates"]["version"]
            for t in server_texts(received)
            if b'"next"' in t
        ]
    assert versions == sorted(set(versions)) and versions[-1] == created
    assert len(versions) < created  # intermediate versions were skipped, not queued
    stalled.close()
    await reader.close()
