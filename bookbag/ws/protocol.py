"""The graphql-transport-ws handler with a fan-out fast path for ``queueUpdates`` and ``ticketEvents``.

Strawberry executes a subscription's selection set once per event *per subscriber*; with thousands of
dashboards watching one merchant that is thousands of identical executions per queue change. Here a
``subscription { queueUpdates { … } }`` runs through Strawberry as usual for its first result (parsing,
the protective validation rules, authorization, the initial snapshot), and from then on each new snapshot
from the process's queue hub is executed ONCE per distinct (document, variables, role) and the serialized
``next`` payload is sent to every subscriber that asked for it. ``subscription { ticketEvents(…) { … } }``
runs through Strawberry up to its authorization (the resolver checks the role and the ticket and hands over,
see ``resolvers.subscriptions.ticket_events_handoff``), and then each committed event of the merchant from
the process's ticket-event hub (``workflow.live.ticket_hub``) is executed once per distinct document and sent to
every subscriber whose ticket filter it passes. ``subscription { pendingActionUpdates { … } }`` hands over
the same way and is fed from the same hub: the events that change the subscriber's role's approval inbox,
executed once per event, document and role. Any other operation, or a first result carrying errors,
stays entirely on Strawberry's path. Both hubs are per merchant: a subscriber is only ever offered its own
merchant's snapshots and events.

Sending is the other per-subscriber cost. On an uncompressed uvicorn websockets-sansio connection (what
``bookbag serve`` runs) the hub's flush loop calls each subscriber's ``push``, which looks the frame up in
the cache and writes its bytes to the socket (``bookbag.ws.direct``): no task wake-up, no ASGI message, no
frame encoding per subscriber. A slow connection (write buffer full), a compressed one, or a document
whose execution is asynchronous takes the subscriber's own task and the ASGI send instead, which waits for
the client and then sends only the newest snapshot (every event, in order, for ``ticketEvents``).

The handler also guards the connection (``bookbag.ws.connections``): connections are counted per key and
merchant at ``connection_init`` (refused over the caps), every ``subscribe`` re-checks the key through the
principal cache, a revoked key's connections and connections past their maximum lifetime are closed, and
messages over ``BOOKBAG_MAX_BODY_BYTES`` close the connection (1009). An operation refused before it runs
(a parse error such as the token limit, a validation error, a refused authorization) is answered with an
``error`` message carrying the errors, never with a bare ``complete``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, suppress
from functools import lru_cache
from json import JSONDecodeError
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
)
from graphql.pyutils import is_awaitable
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, ErrorMessage
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from bookbag.ws.connections import (
    CLOSE_REVOKED,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY,
    ConnectionRefused,
    SetupSlots,
    WsConnections,
)
from bookbag.ws.direct import direct_writer, encode_text_frame
from resolvers.subscriptions import (
    TicketEventsHandoff,
    concerns_inbox,
    last_queue_version,
    pending_update_from,
    queue_from_snapshot,
    ticket_event_from,
    ticket_events_handoff,
)
from runtime.context import RequestContext
from runtime.fairness import RateLimited
from workflow.live.bus import Overflowed
from workflow.tenancy.principal import Principal

if TYPE_CHECKING:
    from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

log = logging.getLogger("bookbag.ws")

MAX_FAST_QUERY_CHARS = 10_000
_PREFIXES_PER_FRAME = 8
UNEXPECTED: dict[str, Any] = {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
MASKED = [UNEXPECTED]
FAN_OUT_FIELDS = frozenset({"queueUpdates", "ticketEvents", "pendingActionUpdates"})
HANDOFF_FIELDS = frozenset({"ticketEvents", "pendingActionUpdates"})  # authorized by the resolver, then fed
# A push: True when the item was handled on the spot (written, or not wanted), False for the slow path.
_Push = Callable[[Any], bool]
_Subscribe = Callable[[_Push | None], AbstractAsyncContextManager[AsyncIterator[Any]]]


class WsView(Protocol):
    """What the handler needs of the view (``bookbag.graphql_http.BookbagGraphQL``)."""

    connections: WsConnections
    setup_slots: SetupSlots
    frames: FrameCache
    direct_frames: bool  # the ws_direct fast path is on (bookbag.fast_paths)

    async def on_ws_connect(self, context: RequestContext) -> Any: ...

    def deadline_seconds(self, query: str, operation_name: str | None) -> float:
        """The per-request deadline for a query or mutation sent over the socket; 0 for a subscription
        (its first result may be the first event) or none configured."""
        ...


class FanOutDocument(NamedTuple):
    field: str  # one of FAN_OUT_FIELDS
    document: DocumentNode


TIMED_OUT = {"code": "TIMEOUT"}


def _timeout_message(seconds: float) -> str:
    return (
        f"the operation did not finish within its {seconds:g} s deadline and was abandoned; a mutation may "
        "still complete: retry it with the same idempotencyKey to learn its outcome"
    )


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    """Done-callback of abandoned work: its outcome is retrieved (so asyncio does not log it) and dropped."""
    if not task.cancelled() and task.exception() is not None:
        log.info("abandoned websocket operation ended with %s", type(task.exception()).__name__)


@lru_cache(maxsize=512)
def fan_out_document(query: str, operation_name: str | None) -> FanOutDocument | None:
    """The parsed document when the operation is a subscription to ``queueUpdates`` or ``ticketEvents``
    alone (no other field, no directive on it), else None."""
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
    if isinstance(only, FieldNode) and only.name.value in FAN_OUT_FIELDS and not only.directives:
        return FanOutDocument(only.name.value, document)
    return None


def _version_of(result: ExecutionResult) -> int:
    """The ``version`` the first result carried, if the client selected it (else -1: resend from the hub)."""
    data = result.data or {}
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("version"), int):
            return int(value["version"])
    return -1


class LimitedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's Starlette websocket adapter, closing the connection (1009) on a message larger than the
    body cap. ``bookbag serve`` also sets uvicorn's ``ws_max_size``; this holds under any server."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        limit = cast("WsView", self.view).connections.limits.max_message_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                size = len(text)
                if size > limit or (size * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
                    await self.close(CLOSE_TOO_BIG, f"message larger than {limit} bytes")
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:  # a binary message
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    _closing = False  # close_connection ran

    @property
    def ws_view(self) -> WsView:
        return cast("WsView", self.view)

    @property
    def principal(self) -> Principal:
        return self.context.auth

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Strawberry's, with the connection caps checked between authentication and the ack."""
        if self.connection_timed_out:
            return
        task = self.connection_init_timeout_task
        if task is not None:
            task.cancel()
            # Strawberry keeps the cancelled timeout task (its CancelledError, two tracebacks and two frames)
            # for as long as the connection lives: ~10 objects per subscriber that every full garbage
            # collection walks. Once it is done, nothing needs it (``shutdown`` skips a None).
            task.add_done_callback(self._forget_init_timeout)
        payload = message.get("payload", {})
        if not isinstance(payload, dict):
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        self.context.connection_params = payload
        try:
            await self.ws_view.on_ws_connect(self.context)  # authenticates the key
            self.ws_view.connections.admit(self)
        except ConnectionRejectionError:
            await self.websocket.close(code=4403, reason="missing or invalid API key")
            return
        except RateLimited as limited:
            reason = f"rate limited: {limited.message}; retry after {limited.retry_after_header} s"
            await self.websocket.close(code=CLOSE_TOO_MANY, reason=reason[:120])
            return
        except ConnectionRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    def _forget_init_timeout(self, task: asyncio.Task[None]) -> None:
        if self.connection_init_timeout_task is task:
            self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Every operation re-checks the key (through the principal cache; a revoked key runs nothing more)
        # and spends one request of the key's and merchant's rate (refused with an ``error`` message).
        if self.connection_acknowledged:
            try:
                await self.ws_view.on_ws_connect(self.context)
            except ConnectionRejectionError:
                key_id = self.principal.key_id
                if key_id:
                    self.context.runtime.principals.forget_key(key_id)  # closes the key's other sockets too
                await self.close_connection(CLOSE_REVOKED, "API key revoked")
                return
            except RateLimited as limited:
                refusal: ErrorMessage = {
                    "id": message["id"],
                    "type": "error",
                    "payload": [
                        {
                            "message": limited.message,
                            "extensions": {"code": "RATE_LIMITED", "retryAfter": limited.retry_after},
                        }
                    ],
                }
                await self.send_message(refusal)
                return
        await super().handle_subscribe(message)

    async def close_connection(self, code: int, reason: str) -> None:
        """Close from the server's side (revoked key, lifetime): stop every operation, then close."""
        if self._closing:
            return
        self._closing = True
        self.ws_view.connections.release(self)
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with suppress(Exception):  # the client may be gone already
            await self.websocket.close(code=code, reason=reason)

    async def shutdown(self) -> None:
        self.ws_view.connections.release(self)
        await super().shutdown()

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        if isinstance(error, GraphQLSyntaxError):
            return None  # answered with an error message like any other refused operation
        return BaseGraphQLTransportWSHandler._get_pre_execution_close_reason(error)

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        fast = fan_out_document(operation.query, operation.operation_name)
        runtime = self.context.runtime
        if fast is not None and fast.field == "queueUpdates" and runtime.queue_hub is None:
            fast = None
        if fast is not None and fast.field in HANDOFF_FIELDS and runtime.ticket_events_hub is None:
            fast = None
        handoff: TicketEventsHandoff | None = None
        if fast is not None and fast.field in HANDOFF_FIELDS:
            # This task's own context: the resolver authorizes and hands the stream over to the fan-out.
            handoff = TicketEventsHandoff()
            ticket_events_handoff.set(handoff)
        # Set up in the merchant's turn (bookbag.ws.connections.SetupSlots): released once the operation
        # has its first result or has handed over to the fan-out, or has ended.
        release = await self.ws_view.setup_slots.take(self.principal.merchant_id)
        try:
            fast_from = await self._strawberry_part(
                operation, fan_out=fast is not None, handoff=handoff, started=release
            )
            release()
            if fast is not None and fast_from is not None:
                if handoff is None:
                    await self._fan_out_queue(operation, fast.document, fast_from)
                elif fast.field == "pendingActionUpdates":
                    await self._fan_out_inbox(operation, fast.document)
                else:
                    await self._fan_out_events(operation, fast.document, handoff)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:  # the connection went away, or a bug: end this operation only
            if self.websocket_gone(error):
                return
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_initial_errors([GraphQLError(**UNEXPECTED)])
            self.operations.pop(operation.id, None)
            raise
        finally:
            release()  # also when cancelled (the client completed the operation or went away)

    @staticmethod
    def websocket_gone(error: Exception) -> bool:
        name = type(error).__name__
        return name in {"WebSocketDisconnect", "WebSocketDisconnected", "ClientDisconnected"} or (
            isinstance(error, RuntimeError) and "websocket" in str(error).lower()
        )

    async def _strawberry_part(
        self,
        operation: Operation[RequestContext, None],
        *,
        fan_out: bool,
        handoff: TicketEventsHandoff | None,
        started: Callable[[], None] = lambda: None,
    ) -> int | None:
        """Strawberry's path. A fan-out operation leaves it after its first result (``queueUpdates``: returns
        the version to continue after) or after the resolver handed over (``ticketEvents``: returns -1); None
        when the operation has finished on this path (refused, failed, or a plain operation's stream ended)."""
        source = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
        )
        deadline = self.ws_view.deadline_seconds(operation.query, operation.operation_name)
        first_result: Awaitable[Any]
        if deadline > 0:  # a query or mutation: its one result runs in a task that may be abandoned
            first_result = asyncio.ensure_future(anext(source, None))
            if not await self._within(first_result, deadline):
                # Abandoned like an HTTP request past its deadline (bookbag.graphql_http): the generator is
                # still running in the cancelled task, which closes it; a database thread finishes first.
                timed_out = GraphQLError(_timeout_message(deadline), extensions=TIMED_OUT)
                await operation.send_initial_errors([timed_out])
                return None
        else:  # a subscription: run in this task, the context its resolver sets the fan-out's hand-over in
            first_result = anext(source, None)
        async with aclosing(source):
            try:
                first = await first_result
            except GraphQLError as error:  # Strawberry raises parse errors (the token limit among them)
                await operation.send_initial_errors([error])
                return None
            if first is None:
                return -1 if handoff is not None and handoff.authorized else None
            if isinstance(first, PreExecutionError):
                await self._handle_pre_execution_error(operation, first)
                return None
            if not isinstance(first, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return None
            if first.errors and first.data is None:  # refused before it produced anything (role, ticket, ...)
                await operation.send_initial_errors(list(first.errors))
                return None
            started()  # set up: a plain subscription streams on from here, outside the merchant's turn
            await operation.send_next(first)
            if fan_out and not first.errors and handoff is None:
                return max(last_queue_version.get(), _version_of(first))
            async for result in source:
                if not isinstance(result, ExecutionResult):
                    await self._reject_incremental_delivery(operation)
                    return None
                await operation.send_next(result)
        return None

    @staticmethod
    async def _within(task: asyncio.Future[Any], seconds: float) -> bool:
        """Whether ``task`` finished within ``seconds``; if not, it is cancelled without waiting for it."""
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return True
        task.cancel()
        task.add_done_callback(_drop_outcome)
        log.warning("websocket operation passed its %g s deadline: answered TIMEOUT", seconds)
        return False

    async def _fan_out_queue(
        self, operation: Operation[RequestContext, None], document: DocumentNode, last_version: int
    ) -> None:
        hub = self.context.runtime.queue_hub
        assert hub is not None
        merchant_id = self.principal.merchant_id

        def subscribe(push: _Push | None) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
            return hub.subscribe(merchant_id, after_version=last_version, push=push)

        await self._fan_out(operation, document, subscribe, queue_from_snapshot, wanted=None)

    async def _fan_out_events(
        self, operation: Operation[RequestContext, None], document: DocumentNode, handoff: TicketEventsHandoff
    ) -> None:
        hub = self.context.runtime.ticket_events_hub
        assert hub is not None
        merchant_id = self.principal.merchant_id
        ticket_id = handoff.ticket_id

        def subscribe(push: _Push | None) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
            return hub.subscribe(merchant_id, push=push)

        def wanted(event: Any) -> bool:
            return bool(event.ticket_id == ticket_id)

        try:
            await self._fan_out(
                operation,
                document,
                subscribe,
                ticket_event_from,
                wanted=None if ticket_id is None else wanted,
            )
        except Overflowed as error:
            await operation.send_initial_errors(
                [GraphQLError(str(error), extensions={"code": "UNAVAILABLE"})]
            )

    async def _fan_out_inbox(
        self, operation: Operation[RequestContext, None], document: DocumentNode
    ) -> None:
        hub = self.context.runtime.ticket_events_hub
        assert hub is not None
        merchant_id = self.principal.merchant_id
        role = self.principal.role.value

        def subscribe(push: _Push | None) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
            return hub.subscribe(merchant_id, push=push)

        def wanted(event: Any) -> bool:
            return concerns_inbox(event, role)

        try:
            await self._fan_out(operation, document, subscribe, pending_update_from, wanted=wanted)
        except Overflowed as error:
            await operation.send_initial_errors(
                [GraphQLError(str(error), extensions={"code": "UNAVAILABLE"})]
            )

    async def _fan_out(
        self,
        operation: Operation[RequestContext, None],
        document: DocumentNode,
        subscribe: _Subscribe,
        to_root: Callable[[Any], Any],
        wanted: Callable[[Any], bool] | None,
    ) -> None:
        """Deliver each item (a queue snapshot, a ticket event) the hub hands this subscriber: its ``next``
        payload is executed once per item and document (:class:`FrameCache`) and the same bytes are written
        to every subscriber of that document. ``wanted`` filters items per subscriber (a ticket id)."""
        key = _DocumentKey(
            operation.query,
            json.dumps(operation.variables or {}, sort_keys=True),
            operation.operation_name,
            self.principal.role.value,
        )
        prefix = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        ws = getattr(self.websocket, "ws", None)
        writer = direct_writer(ws) if ws is not None and self.ws_view.direct_frames else None
        push: _Push | None = None
        if writer is not None:
            prefix_bytes = prefix.encode()

            def push(item: Any) -> bool:
                # Called by the hub's fan-out loop for every subscriber: keep it to a cache hit and a write.
                if operation.completed:
                    return False
                if wanted is not None and not wanted(item):
                    return True
                entry = self._frame(operation, document, item, to_root, key)
                return entry.payload is not None and writer.write(entry.frame(prefix_bytes))

        # Items the push declines (a slow connection, a document that resolves asynchronously, no direct
        # writer) arrive here and go through the ASGI send, which waits while the client is not reading.
        async with subscribe(push) as items:
            async for item in items:
                if wanted is not None and not wanted(item):
                    continue
                payload = await self._payload(operation, document, item, to_root, key)
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
        source: Any,
        to_root: Callable[[Any], Any],
        key: _DocumentKey,
    ) -> _Frame:
        """The (cached) result of ``document`` for ``source``: executed once per item and document."""
        frames = self.ws_view.frames
        cached = frames.get(source, key)
        if cached is not None:
            return cached
        result: Any = execute(
            self.schema._schema,  # type: ignore[attr-defined]
            document,
            root_value=to_root(source),
            # A fresh context per frame: DataLoader caches (e.g. oldestTicket) must not outlive one item.
            context_value=RequestContext(
                runtime=self.context.runtime,
                request_id=self.context.request_id,
                principal=self.context.principal,
            ),
            variable_values=operation.variables,
            operation_name=operation.operation_name,
        )
        entry = _Frame(source)
        if is_awaitable(result):
            entry.pending = asyncio.ensure_future(result)
        else:
            entry.complete(result)
        frames.put(source, key, entry)
        return entry

    async def _payload(
        self,
        operation: Operation[RequestContext, None],
        document: DocumentNode,
        source: Any,
        to_root: Callable[[Any], Any],
        key: _DocumentKey,
    ) -> str:
        entry = self._frame(operation, document, source, to_root, key)
        if entry.payload is None:
            assert entry.pending is not None
            result = await asyncio.shield(entry.pending)
            if entry.payload is None:
                entry.complete(result)
        assert entry.payload is not None
        return entry.payload


class FrameCache:
    """The ``next`` payloads of fan-out documents, per item (a snapshot or event object) and document: the
    hubs hand one object to every subscriber, so the first subscriber's execution serves all the others.
    One per view (``BookbagGraphQL.frames``)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, _DocumentKey], _Frame] = OrderedDict()

    def get(self, source: object, key: _DocumentKey) -> _Frame | None:
        cached = self._entries.get((id(source), key))
        return cached if cached is not None and cached.source is source else None

    def put(self, source: object, key: _DocumentKey, entry: _Frame) -> None:
        self._entries[(id(source), key)] = entry
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class _DocumentKey(NamedTuple):
    query: str
    variables: str
    operation_name: str | None
    role: str  # executed with the first subscriber's principal: never shared across roles


class _Frame:
    """One document's ``next`` payload for one item, and its encoded websocket frames per message prefix."""

    __slots__ = ("frames", "payload", "payload_bytes", "pending", "source")

    def __init__(self, source: object) -> None:
        self.source = source
        self.payload: str | None = None
        self.payload_bytes = b""
        self.pending: asyncio.Future[Any] | None = None
        self.frames: dict[bytes, bytes] = {}

    def complete(self, result: Any) -> None:
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            for error in result.errors:
                log.error("subscription fan-out: %s", error.message, exc_info=error.original_error)
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
