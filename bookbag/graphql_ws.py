"""The graphql-transport-ws handler with a fan-out fast path for ``queueUpdates``.

Strawberry executes a subscription's selection set once per event *per subscriber*; with thousands of
dashboards watching one merchant that is thousands of identical executions per queue change. Here a
``subscription { queueUpdates { … } }`` runs through Strawberry as usual for its first result (parsing,
the protective validation rules, authorization, the initial snapshot), and from then on each new snapshot
from the process's queue hub is executed ONCE per distinct (document, variables) and the serialized
``next`` payload is sent to every subscriber that asked for it. Any other operation, or a first result
carrying errors, stays entirely on Strawberry's path.

Sending is the other per-subscriber cost. On an uncompressed uvicorn websockets-sansio connection (what
``bookbag serve`` runs) the hub's flush loop calls each subscriber's ``push``, which looks the frame up in
the cache and writes its bytes to the socket (``bookbag.ws_direct``): no task wake-up, no ASGI message, no
frame encoding per subscriber. A slow connection (write buffer full), a compressed one, or a document
whose execution is asynchronous takes the subscriber's own task and the ASGI send instead, which waits for
the client and then sends only the newest snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from contextlib import aclosing
from functools import lru_cache
from typing import Any, NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
)
from graphql.pyutils import is_awaitable
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from bookbag.ws_direct import direct_writer, encode_text_frame
from resolvers.context import RequestContext
from resolvers.subscriptions import last_queue_version, queue_from_snapshot
from workflow.live import Push
from workflow.queue import QueueSnapshot

log = logging.getLogger("bookbag.ws")

MAX_FAST_QUERY_CHARS = 10_000
_FRAMES = 256
_PREFIXES_PER_FRAME = 8
_frames: OrderedDict[tuple[int, _DocumentKey], _Frame] = OrderedDict()
MASKED = [{"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]


@lru_cache(maxsize=512)
def queue_updates_document(query: str, operation_name: str | None) -> DocumentNode | None:
    """The parsed document when the operation is a subscription to ``queueUpdates`` alone, else None."""
    if len(query) > MAX_FAST_QUERY_CHARS:
        return None
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    only = selections[0] if len(selections) == 1 else None
    if isinstance(only, FieldNode) and only.name.value == "queueUpdates" and not only.directives:
        return document
    return None


def _version_of(result: ExecutionResult) -> int:
    """The ``version`` the first result carried, if the client selected it (else -1: resend from the hub)."""
    data = result.data or {}
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("version"), int):
            return int(value["version"])
    return -1


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # Strawberry keeps the cancelled connection_init timeout task (its CancelledError, two tracebacks and
        # two frames) for as long as the connection lives: ~10 objects per subscriber that every full garbage
        # collection walks. Once it is done, nothing needs it (``shutdown`` skips a None).
        task = self.connection_init_timeout_task
        if task is not None:
            task.add_done_callback(self._forget_init_timeout)

    def _forget_init_timeout(self, task: asyncio.Task[None]) -> None:
        if self.connection_init_timeout_task is task:
            self.connection_init_timeout_task = None

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        document = queue_updates_document(operation.query, operation.operation_name)
        hub = self.context.runtime.queue_hub
        if document is None or hub is None:
            await super().run_operation(operation)
            return
        try:
            fast_from = await self._first_result(operation)
            if fast_from is not None:
                await self._fan_out(operation, document, fast_from)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:  # the connection went away, or a bug: end this operation only
            if self.websocket_gone(error):
                return
            await self.handle_task_exception(error)
            self.operations.pop(operation.id, None)
            raise

    @staticmethod
    def websocket_gone(error: Exception) -> bool:
        name = type(error).__name__
        return name in {"WebSocketDisconnect", "WebSocketDisconnected", "ClientDisconnected"} or (
            isinstance(error, RuntimeError) and "websocket" in str(error).lower()
        )

    async def _first_result(self, operation: Operation[RequestContext, None]) -> int | None:
        """Strawberry's own path for the first result; returns the version to fan out from, or None when
        the operation has finished on that path (errors, or the stream ended)."""
        source = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
        )
        async with aclosing(source):
            first = await anext(source, None)
            if first is None:
                return None
            if isinstance(first, PreExecutionError):
                await self._handle_pre_execution_error(operation, first)
                return None
            if not isinstance(first, ExecutionResult):
                return None
            await operation.send_next(first)
            if first.errors:
                async for result in source:  # keep Strawberry's behaviour for failing subscriptions
                    if isinstance(result, ExecutionResult):
                        await operation.send_next(result)
                return None
        return max(last_queue_version.get(), _version_of(first))

    async def _fan_out(
        self, operation: Operation[RequestContext, None], document: DocumentNode, last_version: int
    ) -> None:
        hub = self.context.runtime.queue_hub
        assert hub is not None
        principal = self.context.auth
        key = _DocumentKey(
            operation.query, json.dumps(operation.variables or {}, sort_keys=True), operation.operation_name
        )
        prefix = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        ws = getattr(self.websocket, "ws", None)
        writer = direct_writer(ws) if ws is not None else None
        push: Push | None = None
        if writer is not None:
            prefix_bytes = prefix.encode()

            def push(snapshot: QueueSnapshot) -> bool:
                # Called by the hub's fan-out loop for every subscriber: keep it to a cache hit and a write.
                if operation.completed:
                    return False
                entry = self._frame(operation, document, snapshot, key)
                return entry.payload is not None and writer.write(entry.frame(prefix_bytes))

        # Snapshots the push declines (a slow connection, a document that resolves asynchronously, no direct
        # writer) arrive here and go through the ASGI send, which waits while the client is not reading.
        async with hub.subscribe(principal.merchant_id, after_version=last_version, push=push) as snapshots:
            async for snapshot in snapshots:
                payload = await self._payload(operation, document, snapshot, key)
                if operation.completed:
                    return
                if ws is not None:
                    await ws.send_text(prefix + payload + "}")
                else:
                    await self.websocket.send_json(
                        {"id": operation.id, "type": "next", "payload": json.loads(payload)}
                    )

    def _frame(
        self,
        operation: Operation[RequestContext, None],
        document: DocumentNode,
        snapshot: QueueSnapshot,
        key: _DocumentKey,
    ) -> _Frame:
        """The (cached) result of ``document`` for ``snapshot``: executed once per snapshot and document."""
        cache_key = (id(snapshot), key)
        cached = _frames.get(cache_key)
        if cached is not None and cached.snapshot is snapshot:
            return cached
        result: Any = execute(
            self.schema._schema,  # type: ignore[attr-defined]
            document,
            root_value=queue_from_snapshot(snapshot),
            # A fresh context per frame: DataLoader caches (e.g. oldestTicket) must not outlive one snapshot.
            context_value=RequestContext(
                runtime=self.context.runtime,
                request_id=self.context.request_id,
                principal=self.context.principal,
            ),
            variable_values=operation.variables,
            operation_name=operation.operation_name,
        )
        entry = _Frame(snapshot)
        if is_awaitable(result):
            entry.pending = asyncio.ensure_future(result)
        else:
            entry.complete(result)
        _frames[cache_key] = entry
        while len(_frames) > _FRAMES:
            _frames.popitem(last=False)
        return entry

    async def _payload(
        self,
        operation: Operation[RequestContext, None],
        document: DocumentNode,
        snapshot: QueueSnapshot,
        key: _DocumentKey,
    ) -> str:
        entry = self._frame(operation, document, snapshot, key)
        if entry.payload is None:
            assert entry.pending is not None
            result = await asyncio.shield(entry.pending)
            if entry.payload is None:
                entry.complete(result)
        assert entry.payload is not None
        return entry.payload


class _DocumentKey(NamedTuple):
    query: str
    variables: str
    operation_name: str | None


class _Frame:
    """One document's ``next`` payload for one snapshot, and its encoded websocket frames per message prefix."""

    __slots__ = ("frames", "payload", "payload_bytes", "pending", "snapshot")

    def __init__(self, snapshot: QueueSnapshot) -> None:
        self.snapshot = snapshot
        self.payload: str | None = None
        self.payload_bytes = b""
        self.pending: asyncio.Future[Any] | None = None
        self.frames: dict[bytes, bytes] = {}

    def complete(self, result: Any) -> None:
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            for error in result.errors:
                log.error("queueUpdates fan-out: %s", error.message, exc_info=error.original_error)
            body["errors"] = MASKED
        self.payload = json.dumps(body, separators=(",", ":"))
        self.payload_bytes = self.payload.encode()

    def frame(self, prefix: bytes) -> bytes:
        """The complete frame for a subscriber whose messages start with ``prefix`` (its operation id)."""
        frame = self.frames.get(prefix)
        if frame is None:
            frame = encode_text_frame(prefix + self.payload_bytes + b"}")
            # Clients usually share an operation id ("1", "q"); random ids get a frame each, not cached.
            if len(self.frames) < _PREFIXES_PER_FRAME:
                self.frames[prefix] = frame
        return frame
