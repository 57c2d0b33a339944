"""Direct frame writes for the live-queue fan-out: one encoded websocket text frame written straight to a
connection's transport instead of going through the ASGI send path once per subscriber.

Server-to-client frames are unmasked (RFC 6455 §5.1), so on a connection without extensions (no
permessage-deflate) the bytes of a text frame depend on its payload only: the fan-out builds a ``next``
message's frame once and writes the same bytes to every subscriber that gets that message.

This reaches into uvicorn's websockets-sansio protocol (``WebSocketsSansIOProtocol``: its ``conn``,
``transport``, ``writable``, ``close_sent`` and ``disconnected``), checked against the installed uvicorn and
websockets in ``tests/live/test_direct_frames.py``. Everything else — another websocket implementation, a
compressed connection, a send callable that cannot be traced back to the protocol — gets ``None`` from
:func:`direct_writer`, and a connection that is closing or whose write buffer is full gets ``False`` from
:meth:`DirectWriter.write`; the caller then uses the normal ASGI path (which waits for the buffer to drain).

Frames for one connection written in one turn of the event loop go out in one ``transport.write`` at the end
of the turn (:class:`DirectWriter` is shared by the connection's subscriptions): a connection carrying 20
subscriptions of one event gets one send system call instead of 20. Sending was ~70 % of the fan-out's CPU
(py-spy, 2,000 ``ticketEvents`` subscriptions over 100 connections). Frames keep their order; what is still
waiting when the connection starts closing is dropped, as a frame written then would be.
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from collections.abc import Callable
from typing import Any

# A connection with more than this buffered and unsent is slow: it is not written to directly (its own task
# takes over, waits for the buffer to drain and then sends only the latest snapshot).
MAX_BUFFERED_BYTES = 64 * 1024
_UNWRAP_DEPTH = 6

try:  # pragma: no branch
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    _OPEN: Any = State.OPEN
except ImportError:  # pragma: no cover - uvicorn without the sansio implementation: always the ASGI path
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    _OPEN = None


def encode_text_frame(payload: bytes) -> bytes:
    """One final, unmasked, uncompressed text frame (what a server sends on a connection without extensions)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class DirectWriter:
    """Writes pre-encoded frames to one open, uncompressed uvicorn websockets-sansio connection, the frames of
    one event-loop turn together (see the module docstring). One per connection (:func:`direct_writer`)."""

    __slots__ = ("__weakref__", "_pending", "_pending_bytes", "_protocol", "_transport")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, frame: bytes) -> bool:
        """Send ``frame`` at the end of this turn; False (nothing written) when the connection is closing,
        closed or slow."""
        protocol, transport = self._protocol, self._transport
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        buffered = transport.get_write_buffer_size() + self._pending_bytes
        if transport.is_closing() or buffered > MAX_BUFFERED_BYTES:
            return False
        if protocol.conn.state is not _OPEN:
            return False
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        return True

    def flush(self) -> None:
        """Send what was written this turn as one write (called by the event loop; harmless when empty)."""
        frames, self._pending, self._pending_bytes = self._pending, [], 0
        if not frames:
            return
        protocol, transport = self._protocol, self._transport
        if protocol.close_sent or protocol.disconnected or transport.is_closing():
            return
        if protocol.conn.state is not _OPEN:
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))


# One writer per connection, so that its subscriptions' frames share a write; gone with the connection.
_writers: weakref.WeakKeyDictionary[Any, DirectWriter] = weakref.WeakKeyDictionary()


def _protocol_behind(send: Callable[..., Any]) -> Any:
    """The uvicorn protocol whose bound ``send`` is ``send`` or is wrapped by it (Starlette wraps the ASGI send
    in closures for its exception handling); None when it cannot be found."""
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(send, 0)]
    while todo:
        candidate, depth = todo.pop()
        if id(candidate) in seen:
            continue
        seen.add(id(candidate))
        owner = getattr(candidate, "__self__", None)
        if WebSocketsSansIOProtocol is not None and isinstance(owner, WebSocketsSansIOProtocol):
            return owner
        if depth >= _UNWRAP_DEPTH:
            continue
        for cell in getattr(candidate, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(content):
                todo.append((content, depth + 1))
    return None


def direct_writer(starlette_websocket: Any) -> DirectWriter | None:
    """A :class:`DirectWriter` for an accepted Starlette websocket, or None when frames cannot be shared."""
    send = getattr(starlette_websocket, "_send", None)
    if send is None:
        return None
    protocol = _protocol_behind(send)
    if protocol is None or not protocol.handshake_complete:
        return None
    conn = getattr(protocol, "conn", None)
    if conn is None or conn.extensions:  # permessage-deflate: every connection compresses with its own state
        return None
    writer = _writers.get(protocol)
    if writer is None:
        writer = _writers[protocol] = DirectWriter(protocol)
    return writer
