"""The HTTP/websocket edge of ``/graphql``: API-key authentication, request ids, the body-size cap.

Every HTTP request must carry ``Authorization: Bearer <key>``; without a valid key the answer is a 401 with
one error and nothing is executed. Websockets (graphql-transport-ws only) authenticate in
``connection_init`` (``{"Authorization": "Bearer <key>"}``) and are closed with 4403 otherwise; the
websocket handler (``bookbag.graphql_ws``) calls :meth:`BookbagGraphQL.on_ws_connect` again for every
``subscribe``, so a revoked key runs nothing more on an open socket.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from bookbag.graphql_ws import FrameCache, LimitedWebSocketAdapter, LiveTransportWSHandler
from bookbag.ws_connections import WsConnections, WsLimits
from resolvers.context import ApiRuntime, RequestContext, Unauthenticated
from workflow.merchants import authenticate
from workflow.principal import Principal

REQUEST_ID_HEADER = "x-request-id"


def error_response(status: int, code: str, message: str, request_id: str | None = None) -> Response:
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]}
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    if status == 401:
        headers = {**(headers or {}), "www-authenticate": 'Bearer realm="bookbag"'}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def bearer_secret(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


class BookbagGraphQL(GraphQL[RequestContext, None]):
    # queueUpdates and ticketEvents: execute once, fan out; caps, revocation, lifetime (bookbag.graphql_ws)
    graphql_transport_ws_handler_class = LiveTransportWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter  # messages over the body cap close the socket

    def __init__(
        self,
        schema: Any,
        runtime: ApiRuntime,
        *,
        graphql_ide: bool,
        max_subscriptions: int,
        ws_limits: WsLimits | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphql_ide else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=max_subscriptions,
        )
        self.runtime = runtime
        self.connections = WsConnections(runtime, ws_limits or WsLimits())
        self.frames = FrameCache()

    async def authenticate(self, header: str | None) -> Principal | None:
        secret = bearer_secret(header)
        if secret is None:
            return None
        cache = self.runtime.principals
        cached = cache.get(secret)
        if cached is not None:
            return cached
        db = self.runtime.db

        def work() -> Principal | None:
            with db.read_only() as session:
                return authenticate(session, secret)

        principal = await to_thread.run_sync(work, limiter=self.runtime.read_limiter)
        if principal is not None:
            cache.put(secret, principal)
        return principal

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        request_id = secrets.token_hex(8)
        context = RequestContext(
            runtime=self.runtime, request_id=request_id, request=request, response=response
        )
        if isinstance(request, WebSocket):
            return context  # authenticated in on_ws_connect
        if self.graphql_ide and self.should_render_graphql_ide(self.request_adapter_class(request)):
            return context  # the IDE page itself; its requests carry their own key
        principal = await self.authenticate(request.headers.get("authorization"))
        if principal is None:
            raise Unauthenticated(request_id)
        context.principal = principal
        if isinstance(response, Response):
            response.headers[REQUEST_ID_HEADER] = request_id
        return context

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Authenticate the key in ``connection_init`` (through the principal cache); called again before
        every operation on the socket."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        principal = await self.authenticate(header if isinstance(header, str) else None)
        if principal is None:
            raise ConnectionRejectionError({"message": "missing or invalid API key"})
        context.principal = principal
        unset: UnsetType = UNSET
        return unset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Unauthenticated as exc:
            if scope["type"] != "http":
                raise
            response = error_response(401, "UNAUTHENTICATED", "missing or invalid API key", str(exc))
            await response(scope, receive, send)


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
