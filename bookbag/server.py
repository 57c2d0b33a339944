"""Running the app under uvicorn the way ``bookbag serve`` does (the benchmarks use the same function)."""

from __future__ import annotations

import gc
import os
from typing import Any

from starlette.applications import Starlette

from bookbag.gc_pacing import FullCollectionPacer
from bookbag.logs import configure_logging
from bookbag.settings import Settings


def log_to_stderr(settings: Settings) -> None:
    """Print the ``bookbag.*`` loggers' records at ``settings.log_level`` the way uvicorn prints its own (Python
    has no handler for them otherwise and drops everything below WARNING, e.g. the start-up line of
    ``bookbag.fast_paths``), as text or JSON lines (``BOOKBAG_LOG_FORMAT``, bookbag.logs). Call before
    ``create_app``; a second call replaces the handler."""
    configure_logging(settings.log_level, settings.log_format)


def prepare_to_serve(app: Starlette) -> None:
    """What a server process does once its app is built, before it serves."""
    # Everything loaded so far (the classifier, the schema, the policy engine) lives as long as the process:
    # move it out of the cyclic garbage collector's sight. Without this, each full collection walks ~230k
    # start-up objects and stalls the event loop for ~180 ms (measured), which is the worst request latency.
    gc.collect()
    gc.freeze()
    # Full collections of what comes later, at a bounded rate (bookbag.gc_pacing; run by bookbag.background).
    state = app.state.bookbag
    interval = state.settings.gc_full_collection_min_interval_seconds
    if interval > 0 and state.gc_pacer is None:
        state.gc_pacer = FullCollectionPacer(interval)
    # The ruleset workers take seconds to import the policy engine: start them now, not on the first check.
    workers = app.state.bookbag.runtime.workers
    if workers is not None:
        workers.prestart()


def uvicorn_options(settings: Settings, *, access_log: bool) -> dict[str, Any]:
    json_logs = settings.log_format == "json"
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # JSON: bookbag.logs has configured uvicorn's loggers, and the request line replaces the access log.
        "access_log": access_log and not json_logs,
        **({"log_config": None} if json_logs else {}),
        # websockets-sansio without per-message deflate: ~28 KB per open connection instead of ~126 KB, and
        # about 1.7x the fan-out throughput per CPU-second (bench/live_bench.py); queue snapshots are small.
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        # Websocket messages are capped like HTTP bodies (the handler checks too, under any server).
        "ws_max_size": settings.max_body_bytes,
        # On SIGTERM/SIGINT uvicorn stops accepting, closes websockets with 1012 (service restart: clients
        # reconnect), lets in-flight requests finish for at most this long, then runs the lifespan's shutdown.
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds or None,
    }


def run_server(app: Starlette, settings: Settings, *, access_log: bool = True) -> None:
    import uvicorn

    prepare_to_serve(app)
    uvicorn.run(app, **uvicorn_options(settings, access_log=access_log))


class WorkersRefused(ValueError):
    """``--workers`` above 1 on a database that cannot serve several processes."""


def run_workers(
    settings: Settings, workers: int, *, factory: str = "bookbag.server:worker_app", access_log: bool = True
) -> None:
    """``workers`` server processes on one port (uvicorn's supervisor), each building its app with
    ``factory`` (an import string) from the environment. PostgreSQL only: the processes share LISTEN/NOTIFY
    and the scheduler's row claims (ARCHITECTURE.md); SQLite is refused. Migrations run once, here, before
    the workers start; with metrics on, they share a ``PROMETHEUS_MULTIPROC_DIR`` (bookbag.metrics)."""
    import uvicorn

    from storage.db import Database, normalize_url

    url = settings.resolved_database_url()
    if not normalize_url(url).startswith("postgresql"):
        raise WorkersRefused(
            f"--workers {workers} needs PostgreSQL (BOOKBAG_DATABASE_URL=postgresql://…): SQLite has one "
            "writer and no LISTEN/NOTIFY between processes; run one process (--workers 1)"
        )
    database = Database.from_url(url)
    try:
        if settings.run_migrations_on_start:
            from storage.migrate import upgrade

            upgrade(database.engine)
    finally:
        database.dispose()
    os.environ["BOOKBAG_RUN_MIGRATIONS_ON_START"] = "false"
    os.environ["BOOKBAG_HOST"], os.environ["BOOKBAG_PORT"] = settings.host, str(settings.port)
    if settings.metrics:
        from bookbag.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

        directory = os.environ.get(MULTIPROC_ENV) or str((settings.data_dir / "metrics-multiproc").resolve())
        os.environ[MULTIPROC_ENV] = directory
        prepare_multiprocess_dir(directory)
    uvicorn.run(
        factory,
        factory=True,
        workers=workers,
        # The supervisor kills a worker that does not answer its ping in time; a worker starting up (the
        # imports before uvicorn's ping thread runs, the classifier) or busy in a long GIL-holding call on a
        # loaded machine can take longer than uvicorn's 5 s.
        timeout_worker_healthcheck=30,
        **uvicorn_options(settings, access_log=access_log),
    )


def worker_app() -> Starlette:
    """The app of one worker process of :func:`run_workers` (settings from the environment)."""
    from bookbag.app import create_app

    settings = Settings()
    log_to_stderr(settings)
    app = create_app(settings)
    prepare_to_serve(app)
    return app
