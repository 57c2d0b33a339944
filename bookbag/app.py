"""``create_app(settings)``: the Starlette application serving ``/graphql``, ``/healthz`` and the admin UI.

Everything long-lived is built here once (database, policy engine, classifier, event bus, clock) and
handed to the resolvers through :class:`runtime.context.ApiRuntime`. Background work (the SLA scheduler,
the cross-process queue listener) plugs in as *startup hooks*: async context managers entered in Starlette's
lifespan after migrations and exited on shutdown, in reverse order.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anyio import to_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from api.build import BookbagSchema, SchemaLimits, build_schema
from bookbag.background import background_work, build_queue_hub
from bookbag.cors import with_cors
from bookbag.fast_paths import FastPaths, choose_fast_paths
from bookbag.gc_pacing import FullCollectionPacer
from bookbag.graphql_http import BodySizeLimit, BookbagGraphQL, RefusalHold
from bookbag.graphql_ide import IDE_ASSETS_PATH, ide_static_dir
from bookbag.settings import Settings
from bookbag.wiring import build_services, ruleset_limits
from bookbag.ws.connections import WsConnections, WsLimits
from runtime.context import ApiLimits, ApiRuntime
from runtime.fairness import FairLimits, FairShare
from runtime.workers import RulesetParser, WorkerPool
from storage.db import Database
from workflow.live.ticket_hub import TicketEventHub
from workflow.metrics import NoMetrics
from workflow.reports import rollups as report_rollups
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import PrincipalCache
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import WebhookDispatcher

if TYPE_CHECKING:
    from bookbag.metrics import Metrics

log = logging.getLogger("bookbag.app")
PING_TIMEOUT_SECONDS = 5.0


@dataclass
class AppState:
    """What the running app holds; reachable as ``app.state.bookbag``."""

    settings: Settings
    runtime: ApiRuntime
    schema: BookbagSchema
    startup_hooks: list[StartupHook] = field(default_factory=list)
    ws_connections: WsConnections | None = None  # the open websockets (caps, revocation, lifetime)
    fast_paths: FastPaths = field(default_factory=FastPaths)  # what bookbag.fast_paths chose at start-up
    metrics: Metrics | None = None  # /metrics (bookbag.metrics), when BOOKBAG_METRICS is on
    webhook_dispatcher: WebhookDispatcher | None = None  # running while the lifespan is (bookbag.background)
    gc_pacer: FullCollectionPacer | None = None  # server processes only (bookbag.server.prepare_to_serve)

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def services(self) -> WorkflowServices:
        return self.runtime.services


StartupHook = Callable[[AppState], AbstractAsyncContextManager[None]]


def schema_limits(settings: Settings) -> SchemaLimits:
    return SchemaLimits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_batch_operations=settings.max_batch_operations,
        max_query_cost=settings.max_query_cost,
        introspection=not settings.is_production,
        suggestions=not settings.is_production,
    )


def ws_limits(settings: Settings) -> WsLimits:
    return WsLimits(
        max_per_key=settings.ws_max_connections_per_key,
        max_per_merchant=settings.ws_max_connections_per_merchant,
        max_lifetime_seconds=settings.ws_max_lifetime_seconds,
        max_message_bytes=settings.max_body_bytes,
        setups_per_merchant_per_second=settings.ws_setups_per_merchant_per_second,
        handshakes_per_address_per_second=settings.ws_handshakes_per_address_per_second,
        # A key revoked where no notification reaches this process closes its sockets within this time.
        key_check_seconds=settings.auth_cache_seconds if settings.auth_cache_seconds > 0 else 1.0,
    )


def fair_limits(settings: Settings) -> FairLimits:
    return FairLimits(
        key_per_second=settings.rate_limit_key_per_second,
        key_burst=settings.rate_limit_key_burst,
        merchant_per_second=settings.rate_limit_merchant_per_second,
        merchant_burst=settings.rate_limit_merchant_burst,
        failed_auth_per_second=settings.failed_auth_per_second,
        failed_auth_burst=settings.failed_auth_burst,
        db_units_per_merchant=settings.db_units_per_merchant,
        heavy_per_merchant=settings.heavy_per_merchant,
        heavy_queue_per_merchant=settings.heavy_queue_per_merchant,
        heavy_per_process=settings.heavy_per_process,
        heavy_wait_seconds=settings.heavy_wait_seconds,
    )


def with_metrics(settings: Settings, state: AppState) -> Metrics:
    """The process's metrics (imported only when on: prometheus-client chooses its multiprocess mode at
    import), wired to the workflow's seam, the database and the open websockets."""
    from bookbag.metrics import Metrics

    metrics = Metrics(max_operation_names=settings.metrics_max_operation_names)
    services = state.runtime.services
    services.metrics = metrics
    metrics.watch_database(state.db, per_merchant=settings.metrics_per_merchant, clock=services.clock)
    if state.ws_connections is not None:
        state.ws_connections.on_count = metrics.websockets.inc
    state.metrics = metrics
    return metrics


def migration_state(db: Database) -> tuple[str | None, str | None]:
    from storage.migrate import current_revision, head_revision

    return current_revision(db.engine), head_revision()


def admin_static_dir() -> Path | None:
    spec = importlib.util.find_spec("admin_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        static = Path(location) / "static"
        if static.is_dir():
            return static
    return None


def create_app(
    settings: Settings,
    *,
    services: WorkflowServices | None = None,
    database: Database | None = None,
    startup_hooks: Sequence[StartupHook] = (),
) -> Starlette:
    """Build the app. ``services``/``database`` may be passed in (tests share one loaded classifier)."""
    db = database or Database.from_url(settings.resolved_database_url())
    report_rollups.install(db)  # every unit of work keeps the reports' roll-ups in step
    runtime = ApiRuntime(
        db=db,
        services=services or build_services(settings),
        limits=ApiLimits(
            max_page_size=settings.max_page_size,
            max_concurrent_reads=settings.db_read_threads,
            max_concurrent_writes=settings.db_write_threads,
            max_group_commit=settings.max_group_commit,
        ),
        principals=PrincipalCache(ttl_seconds=settings.auth_cache_seconds),
        fair=FairShare(fair_limits(settings)),
        workers=WorkerPool(
            settings.heavy_per_process, settings.heavy_timeout_seconds, ruleset_limits(settings)
        )
        if settings.heavy_in_processes
        else None,
        # Test pings answer within the request: a shorter time limit than the dispatcher's.
        webhook_pings=Sender(
            timeout=min(settings.webhook_timeout_seconds, PING_TIMEOUT_SECONDS),
            allow_private=settings.webhook_allow_private,
        ),
    )
    parser: RulesetParser | None = None
    if services is None and settings.heavy_in_processes:
        # Only for services this app owns: tests share one WorkflowServices between apps.
        parser = RulesetParser(ruleset_limits(settings), settings.heavy_timeout_seconds)
        runtime.services.rulesets.parser = parser.parse
    runtime.queue_hub = build_queue_hub(settings, db, runtime.services)
    runtime.ticket_events_hub = TicketEventHub(runtime.services.bus)
    fast_paths = choose_fast_paths(settings.fast_paths)
    schema = build_schema(schema_limits(settings), fast_leaves=fast_paths.execution)
    graphql = BookbagGraphQL(
        schema,
        runtime,
        graphql_ide=not settings.is_production,
        max_subscriptions=settings.max_subscriptions_per_connection,
        ws_limits=ws_limits(settings),
        request_timeout=settings.request_timeout_seconds,
        refusal_hold=RefusalHold(settings.rate_limit_hold_seconds, settings.rate_limit_hold_min_seconds),
        allowed_origins=settings.cors_origins,
        direct_frames=fast_paths.ws_direct,
    )
    state = AppState(
        settings=settings,
        runtime=runtime,
        schema=schema,
        startup_hooks=[background_work, *startup_hooks],
        ws_connections=graphql.connections,
        fast_paths=fast_paths,
    )
    limited = BodySizeLimit(graphql, settings.max_body_bytes)
    metrics = with_metrics(settings, state) if settings.metrics else None
    graphql.metrics, graphql.request_log = metrics, settings.log_format == "json"

    async def healthz(_request: Request) -> JSONResponse:
        def ping() -> None:
            with db.read_only() as session:
                session.execute(text("SELECT 1"))

        try:
            await to_thread.run_sync(ping)
        except Exception:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": db.engine.dialect.name})

    async def readyz(_request: Request) -> JSONResponse:
        """Ready to serve: the database answers and its schema is at the shipped migrations' head."""
        try:
            current, head = await to_thread.run_sync(migration_state, db)
        except Exception:
            log.warning("readiness check: database unreachable", exc_info=True)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        if current != head:
            body = {"status": "error", "database": "reachable", "migration": current, "expected": head}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "database": db.engine.dialect.name, "migration": current})

    # Browsers on other origins (bookbag.cors): CORS answers only when origins are configured. (Websockets
    # from a browser must come from a listed origin or the server's own: the view checks, allowed_origins.)
    graphql_http: ASGIApp = limited
    http_methods = ["GET", "POST"]
    if settings.cors_origins:
        graphql_http = with_cors(limited, settings.cors_origins)
        http_methods.append("OPTIONS")  # preflights
    routes: list[BaseRoute] = [
        Route("/graphql", graphql_http, methods=http_methods),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/", lambda _request: RedirectResponse("/admin/"), methods=["GET"]),
    ]
    if metrics is not None:
        from bookbag.metrics import metrics_endpoint

        routes.append(Route("/metrics", metrics_endpoint(metrics, settings.metrics_token), methods=["GET"]))
    if not settings.is_production:  # GraphiQL's files for the page GET /graphql renders (bookbag.graphql_ide)
        routes.append(Mount(IDE_ASSETS_PATH, app=StaticFiles(directory=ide_static_dir()), name="graphql-ide"))
    static = admin_static_dir()
    if static is not None:
        routes.append(Mount("/admin", app=StaticFiles(directory=static, html=True), name="admin"))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if settings.run_migrations_on_start:
            from storage.migrate import upgrade

            await to_thread.run_sync(upgrade, db.engine)
        async with AsyncExitStack() as stack:
            for hook in state.startup_hooks:
                await stack.enter_async_context(hook(state))
            yield
        if runtime.workers is not None:
            runtime.workers.close()
        if parser is not None:
            runtime.services.rulesets.parser = None
            parser.close()
        if metrics is not None:
            metrics.process_exited()
            runtime.services.metrics = NoMetrics()
        if database is None:
            db.dispose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.bookbag = state
    return app
