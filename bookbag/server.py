"""Running the app under uvicorn the way ``bookbag serve`` does (the benchmarks use the same function)."""

from __future__ import annotations

import gc
import logging

from starlette.applications import Starlette

from bookbag.settings import Settings


def log_to_stderr(settings: Settings) -> None:
    """Print the ``bookbag.*`` loggers' records at ``settings.log_level`` the way uvicorn prints its own (Python
    has no handler for them otherwise and drops everything below WARNING, e.g. the start-up line of
    ``bookbag.fast_paths``). Call before ``create_app``; a second call adds nothing."""
    logger = logging.getLogger("bookbag")
    logger.setLevel(settings.log_level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        logger.addHandler(handler)


def run_server(app: Starlette, settings: Settings, *, access_log: bool = True) -> None:
    import uvicorn

    # Everything loaded so far (the classifier, the schema, the policy engine) lives as long as the process:
    # move it out of the cyclic garbage collector's sight. Without this, each full collection walks ~230k
    # start-up objects and stalls the event loop for ~180 ms (measured), which is the worst request latency.
    gc.collect()
    gc.freeze()
    # The ruleset workers take seconds to import the policy engine: start them now, not on the first check.
    workers = app.state.bookbag.runtime.workers
    if workers is not None:
        workers.prestart()
    # websockets-sansio without per-message deflate: ~28 KB per open connection instead of ~126 KB, and
    # about 1.7x the fan-out throughput per CPU-second (bench/live_bench.py); queue snapshots are small.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=access_log,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        # Websocket messages are capped like HTTP bodies (the handler checks too, under any server).
        ws_max_size=settings.max_body_bytes,
    )
