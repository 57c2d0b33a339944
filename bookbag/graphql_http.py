"""The HTTP/websocket edge of ``/graphql``: API-key authentication, request ids, the body-size cap.

Every HTTP request must carry ``Authorization: Bearer <key>``; without a valid key the answer is a 401 with
one error and nothing is executed. Websockets (graphql-transport-ws only) authenticate in
``connection_init`` (``{"Authorization": "Bearer <key>"}``) and are closed with 4403 otherwise.

Rate limits (``resolvers.fairness``) are taken here, before the body is parsed: a known key spends one
request of its key's and its merchant's rate; a key that has to be looked up is refused before the lookup
when its client address has used up its failed authentications. A refusal is a 429 with ``Retry-After`` and
one GraphQL error, code RATE_LIMITED with ``extensions.retryAfter`` in seconds.
"""

from __future__ import annotations

import json
import math
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

from bookbag.graphql_ws import LiveTransportWSHandler
from resolvers.context import ApiRuntime, RequestContext, Unauthenticated
from resolvers.fairness import RateLimited
from workflow.merchants import authenticate
from workflow.principal import Principal

REQUEST_ID_HEADER = "x-request-id"


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


class BookbagGraphQL(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = LiveTransportWSHandler  # queueUpdates: execute once, fan out

    def __init__(
        self, schema: Any, runtime: ApiRuntime, *, graphql_ide: bool, max_subscriptions: int
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphql_ide else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=max_subscriptions,
        )
        self.runtime = runtime

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
        if isinstance(response, Response):
            response.headers[REQUEST_ID_HEADER] = request_id
        return context

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            principal = await self.authenticate(
                header if isinstance(header, str) else None, client_address(context.request)
            )
            if principal is not None:
                self.runtime.fair.admit(principal)
        except RateLimited as exc:
            raise ConnectionRejectionError(
                {
                    "message": exc.message,
                    "extensions": {"code": "RATE_LIMITED", "retryAfter": exc.retry_after},
                }
            ) from None
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
        except RefusedRequest as exc:
            if scope["type"] != "http":
                raise
            refused = exc.refused
            response = error_response(
                429, "RATE_LIMITED", refused.message, exc.request_id, retry_after=refused.retry_after
            )
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
