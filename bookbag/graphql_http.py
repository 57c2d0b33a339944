"""The HTTP/websocket edge of ``/graphql``: API-key authentication, request ids, the body-size cap, the
JSON shape of a request, a batch's shared cost budget and the request's execution deadline.

Every HTTP request must carry ``Authorization: Bearer <key>``; without a valid key the answer is a 401 with
one error and nothing is executed. Websockets (graphql-transport-ws only) authenticate in
``connection_init`` (``{"Authorization": "Bearer <key>"}``) and are closed with 4403 otherwise; the
websocket handler (``bookbag.ws.protocol``) calls :meth:`BookbagGraphQL.on_ws_connect` again for every
``subscribe``, so a revoked key runs nothing more on an open socket.

A body that is not JSON, nests deeper than ``max_json_depth``, or is not an object (or a batch of objects)
with the fields GraphQL expects is answered 400 with a GraphQL error body (``INVALID_INPUT``), never a
plain-text or 500 answer. Each operation's own cost is checked by the schema (``api.build``); a batch's
operations together must fit the same budget, checked here before any of them runs.

The deadline: past ``request_timeout`` seconds the request is answered ``TIMEOUT`` and its execution is
cancelled. Work already handed to a database thread cannot be interrupted: it runs to its end in the
background, holding its thread, and its result is dropped. A mutation may therefore still commit after its
TIMEOUT answer; retrying with the same ``idempotencyKey`` gives its outcome without running it twice.

Rate limits (``runtime.fairness``) are taken here, before the body is parsed: a known key spends one
request of its key's and its merchant's rate; a key that has to be looked up is refused before the lookup
when its client address has used up its failed authentications. A refusal is a 429 with ``Retry-After`` and
one GraphQL error, code RATE_LIMITED with ``extensions.retryAfter`` in seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from anyio import to_thread
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, get_operation_ast
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from api.build import BookbagSchema, too_costly
from bookbag.graphql_ide import GRAPHIQL_HTML
from bookbag.ws.connections import CLOSE_TRY_AGAIN, HandshakePacer, SetupSlots, WsConnections, WsLimits
from bookbag.ws.protocol import FrameCache, LimitedWebSocketAdapter, LiveTransportWSHandler
from runtime.context import ApiRuntime, RequestContext, Unauthenticated
from runtime.fairness import RateLimited
from workflow.tenancy.merchants import authenticate
from workflow.tenancy.principal import Principal

if TYPE_CHECKING:
    from bookbag.metrics import Metrics

log = logging.getLogger("bookbag.api")
request_log = logging.getLogger("bookbag.request")

REQUEST_ID_HEADER = "x-request-id"
MAX_JSON_DEPTH = 64  # far above any real request (a ticket input nests 4 deep, simulation facts a few more)
HTTP_ERROR_CODES = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
TIMEOUT = "TIMEOUT"
ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"

T = TypeVar("T")


def error_response(
    status: int, code: str, message: str, request_id: str | None = None, *, retry_after: float | None = None
) -> Response:
    extensions: dict[str, Any] = {"code": code}
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    if status == 401:
        headers = {**(headers or {}), "www-authenticate": 'Bearer realm="bookbag"'}
    if retry_after is not None:
        extensions["retryAfter"] = retry_after
        headers = {**(headers or {}), "retry-after": str(max(1, math.ceil(retry_after)))}
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": extensions}]}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def bearer_secret(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


class JsonTooDeep(json.JSONDecodeError):
    """A JSON text nested deeper than the edge accepts (a JSONDecodeError, so websockets treat it as
    unparseable too)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nests deeper than {limit} levels", "", 0)
        self.limit = limit


def nests_deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return False


def request_shape_problem(data: Any) -> str | None:
    """Why a decoded body is not a GraphQL request (or a batch of them), if it is not."""
    if isinstance(data, list):
        for index, item in enumerate(data):
            problem = request_shape_problem(item) if isinstance(item, dict) else "is not a JSON object"
            if problem:
                return f"batch item {index} {problem}"
        return None
    if not isinstance(data, dict):
        return "the request body must be a JSON object (or a list of them: a batch)"
    expected = {"query": str, "operationName": str, "variables": dict, "extensions": dict}
    for name, kind in expected.items():
        value = data.get(name)
        if value is not None and not isinstance(value, kind):
            return f"`{name}` must be {'a string' if kind is str else 'an object'} or null"
    return None


@dataclass
class RequestInfo:
    """What one HTTP request's log line says (kept in its ASGI scope while it runs)."""

    request_id: str | None = None
    merchant: str | None = None
    operations: list[str] = field(default_factory=list)

    def fields(self, **more: Any) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "merchant": self.merchant,
            "operation": ",".join(self.operations) or None,
            **more,
        }


SCOPE_INFO = "bookbag.request"


def _forget(task: asyncio.Future[Any]) -> None:
    """Done-callback of abandoned work: its outcome is dropped (retrieved, so asyncio does not log it)."""
    if not task.cancelled() and task.exception() is not None:
        log.info("abandoned work ended with %s", type(task.exception()).__name__)


def client_address(connection: Any) -> str:
    """The peer's address as the server saw it (behind a proxy: the proxy's, unless the server is told
    to trust forwarded headers, e.g. uvicorn's ``--forwarded-allow-ips``)."""
    client = getattr(connection, "client", None)
    return str(client.host) if client is not None and client.host else "unknown"


class RefusedRequest(Exception):
    """A request refused by a rate limit before it was parsed (answered 429)."""

    def __init__(self, request_id: str, refused: RateLimited) -> None:
        super().__init__(refused.message)
        self.request_id = request_id
        self.refused = refused


class RefusalHold:
    """Holds a rate-limited answer until its retry hint has passed, but at least ``min_seconds`` and at most
    ``max_seconds``, so a client that retries at once — a closed-loop flood — sends a few requests per
    second per connection instead of spinning the event loop on refusals (at a high rate limit the hint
    alone is milliseconds). A held answer costs a sleeping task and its connection, nothing else; at most
    ``max_held`` are held at once in a process, beyond that they are answered at once (an attacker with
    thousands of connections is a job for the connection limit, ``--limit-concurrency``, or a proxy)."""

    sleep = staticmethod(asyncio.sleep)  # how a held answer waits (tests record it)

    def __init__(self, max_seconds: float, min_seconds: float = 0.0, max_held: int = 1000) -> None:
        self.max_seconds = max_seconds
        self.min_seconds = min(min_seconds, max_seconds)
        self.max_held = max_held
        self.held = 0

    async def wait(self, retry_after: float) -> None:
        delay = min(max(retry_after, self.min_seconds), self.max_seconds)
        if delay <= 0 or self.held >= self.max_held:
            return
        self.held += 1
        try:
            await self.sleep(delay)
        finally:
            self.held -= 1


class BookbagGraphQL(GraphQL[RequestContext, None]):
    # queueUpdates and ticketEvents: execute once, fan out; caps, revocation, lifetime (bookbag.ws.protocol)
    graphql_transport_ws_handler_class = LiveTransportWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter  # messages over the body cap close the socket
    metrics: Metrics | None = None  # bookbag.metrics, set by create_app when /metrics is on
    request_log = False  # one bookbag.request line per HTTP request (BOOKBAG_LOG_FORMAT=json)

    def __init__(
        self,
        schema: BookbagSchema,
        runtime: ApiRuntime,
        *,
        graphql_ide: bool,
        max_subscriptions: int,
        ws_limits: WsLimits | None = None,
        request_timeout: float = 0,
        refusal_hold: RefusalHold | None = None,
        max_json_depth: int = MAX_JSON_DEPTH,
        allowed_origins: Sequence[str] = (),
        direct_frames: bool = True,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphql_ide else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=max_subscriptions,
            # Browser pages on other origins that may open websockets (BOOKBAG_CORS_ORIGINS, bookbag.cors)
            allowed_origins=allowed_origins,
        )
        self.runtime = runtime
        limits = ws_limits or WsLimits()
        self.connections = WsConnections(runtime, limits)
        self.setup_slots = SetupSlots(per_second=limits.setups_per_merchant_per_second)
        self.handshakes = HandshakePacer(limits.handshakes_per_address_per_second)
        self.frames = FrameCache()
        # the fan-out writes frames straight to uvicorn's transport (bookbag.ws.direct; bookbag.fast_paths)
        self.direct_frames = direct_frames
        self.bookbag_schema = schema  # typed: strawberry's view knows only a BaseSchema
        self.request_timeout = request_timeout
        self.refusal_hold = refusal_hold or RefusalHold(0)
        self.max_json_depth = max_json_depth

    @property
    def graphql_ide_html(self) -> str:
        return GRAPHIQL_HTML  # its files come from /graphql-ide/, never a CDN (bookbag.graphql_ide)

    def decode_json(self, data: str | bytes) -> object:
        # Also used for websocket messages: a JsonTooDeep there closes the socket as unparseable.
        try:
            value = json.loads(data)
        except RecursionError:
            raise JsonTooDeep(self.max_json_depth) from None
        if nests_deeper_than(value, self.max_json_depth):
            raise JsonTooDeep(self.max_json_depth)
        return value

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = self.decode_json(data)
        except JsonTooDeep as exc:
            raise HTTPException(400, f"the request body {exc.msg}") from None
        except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            raise HTTPException(400, "the request body is not valid JSON") from None
        problem = request_shape_problem(value)
        if problem:
            raise HTTPException(400, problem)
        return value

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: RequestContext,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + self.request_timeout
        if not isinstance(request_data, list):
            whole = super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
            return await self._observed(request_data, self._before(deadline, whole, context), context)
        refusal = self._batch_cost_refusal(request_data)
        if refusal is not None:
            return [ExecutionResult(data=None, errors=[refusal]) for _ in request_data]
        return list(
            await asyncio.gather(
                *(
                    self._observed(
                        data,
                        self._before(
                            deadline,
                            self.execute_single(
                                request=request,
                                request_adapter=request_adapter,
                                sub_response=sub_response,
                                context=context,
                                root_value=root_value,
                                request_data=data,
                            ),
                            context,
                        ),
                        context,
                    )
                    for data in request_data
                )
            )
        )

    async def _observed(self, data: GraphQLRequestData, work: Awaitable[T], context: RequestContext) -> T:
        """``work`` (one operation), counted by its name in the metrics and the request's log line."""
        if self.metrics is None and not self.request_log:
            return await work
        started = time.perf_counter()
        result = await work
        name = data.operation_name or self._only_operation_name(data.query)
        info = context.request.scope.get(SCOPE_INFO) if isinstance(context.request, Request) else None
        if self.metrics is not None:
            name = self.metrics.operation(name, time.perf_counter() - started)
            self.metrics.errors_of(result)
        if isinstance(info, RequestInfo):
            info.operations.append(name or "_other")
        return result

    def _only_operation_name(self, query: str | None) -> str | None:
        """The name of a document's only operation (from the guard's parse cache), else None."""
        try:
            document = self.bookbag_schema.guard.parse(query or "")
        except GraphQLError:
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) == 1 and operations[0].name is not None:
            return operations[0].name.value
        return None

    def _batch_cost_refusal(self, batch: list[GraphQLRequestData]) -> GraphQLError | None:
        """The batch's summed cost over the budget refuses all of it, before any operation runs. (A
        document that does not parse costs nothing here: it fails on its own.)"""
        guard = self.bookbag_schema.guard
        total = 0
        for data in batch:
            try:
                document = guard.parse(data.query or "")
            except GraphQLError:
                continue
            total += guard.cost(
                self.bookbag_schema._schema, document, data.operation_name, data.variables, data.query
            )
        if total > guard.limits.max_query_cost:
            return too_costly(total, guard.limits.max_query_cost, what=f"batch ({len(batch)} operations)")
        return None

    async def _before(
        self, deadline: float, work: Awaitable[T], context: RequestContext
    ) -> T | ExecutionResult:
        """``work``'s result, or a TIMEOUT result once the loop's clock passes ``deadline``."""
        if self.request_timeout <= 0:
            return await work
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait(
                {task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time())
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        # Cancelled without waiting: a database thread it waits on finishes first (see the module docstring).
        task.cancel()
        task.add_done_callback(_forget)
        log.warning(
            "request %s passed its %g s deadline: answered TIMEOUT", context.request_id, self.request_timeout
        )
        error = GraphQLError(
            f"the request did not finish within its {self.request_timeout:g} s deadline and was abandoned; "
            "a mutation may still complete: retry it with the same idempotencyKey to learn its outcome",
            extensions={"code": TIMEOUT},
        )
        return ExecutionResult(data=None, errors=[error])

    async def authenticate(self, header: str | None, address: str) -> Principal | None:
        """The key's principal (cached, else looked up), or None. Raises ``RateLimited`` before the lookup
        when ``address`` (the client's) has used up its failed authentications."""
        secret = bearer_secret(header)
        if secret is None:
            return None
        cache = self.runtime.principals
        cached = cache.get(secret)
        if cached is not None:
            return cached
        fair = self.runtime.fair
        fair.check_lookup(address)
        db = self.runtime.db

        def work() -> Principal | None:
            with db.read_only() as session:
                return authenticate(session, secret)

        principal = await to_thread.run_sync(work, limiter=self.runtime.read_limiter)
        if principal is None:
            fair.lookup_failed(address)
        else:
            cache.put(secret, principal)
        return principal

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        request_id = secrets.token_hex(8)
        context = RequestContext(
            runtime=self.runtime, request_id=request_id, request=request, response=response
        )
        info = request.scope.get(SCOPE_INFO)
        if isinstance(info, RequestInfo):
            info.request_id = request_id
        if isinstance(request, WebSocket):
            return context  # authenticated in on_ws_connect
        if self.graphql_ide and self.should_render_graphql_ide(self.request_adapter_class(request)):
            return context  # the IDE page itself; its requests carry their own key
        try:
            principal = await self.authenticate(request.headers.get("authorization"), client_address(request))
            if principal is None:
                raise Unauthenticated(request_id)
            self.runtime.fair.admit(principal)
        except RateLimited as exc:
            raise RefusedRequest(request_id, exc) from None
        context.principal = principal
        if isinstance(info, RequestInfo):
            info.merchant = principal.merchant_id
        if isinstance(response, Response):
            response.headers[REQUEST_ID_HEADER] = request_id
        return context

    def deadline_seconds(self, query: str, operation_name: str | None) -> float:
        """``request_timeout`` for a query or mutation sent over a websocket, 0 for a subscription (its
        first result may be the first event) or a document that does not parse (strawberry answers it)."""
        if self.request_timeout <= 0:
            return 0.0
        try:
            document = self.bookbag_schema.guard.parse(query)
        except GraphQLError:
            return 0.0
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation == OperationType.SUBSCRIPTION:
            return 0.0
        return self.request_timeout

    async def _refuse_handshake(self, scope: Scope, receive: Receive, send: Send) -> None:
        """429 RATE_LIMITED with a retry hint where the server supports ASGI's websocket denial response,
        else a close before accept (a bare 403)."""
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
            return
        wait = self.handshakes.max_wait_seconds
        message = f"too many websocket handshakes from this address; retry after {wait:g} s"
        response = error_response(429, "RATE_LIMITED", message, retry_after=wait)
        await WebSocket(scope, receive, send).send_denial_response(response)

    async def reject_websocket(self, request: WebSocket) -> WebSocket:
        """A browser page on an origin that is neither listed nor the server's own (strawberry's check):
        403 with a coded body where the server supports ASGI's websocket denial response, else strawberry's
        close before accept (which the server answers with a bare 403)."""
        if "websocket.http.response" not in request.scope.get("extensions", {}):
            return await super().reject_websocket(request)
        message = "pages on this origin may not open websockets to the API (BOOKBAG_CORS_ORIGINS)"
        await request.send_denial_response(error_response(403, ORIGIN_NOT_ALLOWED, message))
        return request

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Authenticate the key in ``connection_init`` (through the principal cache); called again before
        every operation on the socket, which spends one request of the key's and merchant's rate.
        ``RateLimited`` propagates: the websocket handler answers it (close 4429 at ``connection_init``, an
        ``error`` message for a ``subscribe``), never as a bad or revoked key."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        principal = await self.authenticate(
            header if isinstance(header, str) else None, client_address(context.request)
        )
        if principal is not None:
            self.runtime.fair.admit(principal)
        if principal is None:
            raise ConnectionRejectionError({"message": "missing or invalid API key"})
        context.principal = principal
        unset: UnsetType = UNSET
        return unset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            client = scope.get("client")
            if not await self.handshakes.wait(client[0] if client else ""):
                await self._refuse_handshake(scope, receive, send)
                return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response: Response
        started = time.perf_counter()
        info = scope[SCOPE_INFO] = RequestInfo()
        code: str | None = None
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except Unauthenticated as exc:
            code = "UNAUTHENTICATED"
            response = error_response(401, code, "missing or invalid API key", str(exc))
        except HTTPException as exc:  # strawberry answers these in plain text; clients get a GraphQL body
            code = HTTP_ERROR_CODES.get(exc.status_code, "INVALID_INPUT")
            response = error_response(exc.status_code, code, exc.reason)
        except RefusedRequest as exc:
            refused = exc.refused
            code = "RATE_LIMITED"
            response = error_response(
                429, code, refused.message, exc.request_id, retry_after=refused.retry_after
            )
            await self.refusal_hold.wait(refused.retry_after)
        except ClientDisconnect:
            # The client went away before its body arrived: nothing ran, nobody to answer. One quiet line.
            duration = round((time.perf_counter() - started) * 1000, 3)
            extra = info.fields(status=499, duration_ms=duration, client=client_address(Request(scope)))
            log.info("client disconnected before the request body was read", extra=extra)
            return
        if code is not None and self.metrics is not None:
            self.metrics.error(code)
        await response(scope, receive, send)
        if self.request_log:
            duration = round((time.perf_counter() - started) * 1000, 3)
            status = response.status_code
            extra = info.fields(status=status, duration_ms=duration, method=scope.get("method"))
            request_log.info(
                "%s %s %s %s %.1f ms",
                scope.get("method"),
                scope.get("path"),
                status,
                extra["operation"],
                duration,
                extra=extra,
            )


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is declared."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "PAYLOAD_TOO_LARGE", f"request body is larger than {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
