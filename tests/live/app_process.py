"""``python -m tests.live.app_process --port N``: a ``bookbag serve``-like uvicorn process for the live tests
and the live benchmark — the real app from ``create_app(Settings())`` (settings from the environment), with
a fixed classifier so the process starts fast and ticket priorities (hence SLA due times) are predictable.
Everything else (policy engine, database, hub, LISTEN, scheduler) is the production code path."""

from __future__ import annotations

import argparse
import gc
import os

import uvicorn
from starlette.applications import Starlette

from bookbag.app import create_app
from bookbag.server import log_to_stderr, prepare_to_serve, run_server, run_workers
from bookbag.settings import Settings
from classifier import Prediction
from policy import PolicyEngine
from workflow.services import WorkflowServices


class FixedClassifier:
    """Always ``shipping_delivery`` / ``normal``: the live queue and the scheduler do not depend on it."""

    def predict_batch(self, tickets: list[object]) -> list[Prediction]:
        return [self.predict(ticket) for ticket in tickets]

    def predict(self, _ticket: object) -> Prediction:
        return Prediction(
            category="shipping_delivery",
            category_confidence=0.9,
            priority="normal",
            priority_confidence=0.9,
            model_version="fixed-test",
        )


def fixed_services() -> WorkflowServices:
    return WorkflowServices(policy=PolicyEngine(), classifier=FixedClassifier())  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (bookbag serve --workers)")
    parser.add_argument(
        "--ws-deflate",
        action="store_true",
        help="turn permessage-deflate on (off by default, as in bookbag serve)",
    )
    parser.add_argument(
        "--gc-threshold",
        help="gc.set_threshold(a, b, c) before serving, e.g. 20000,20,10 (an experiment for bench/live_bench.py)",
    )
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(*(int(part) for part in args.gc_threshold.split(",")))
    settings = Settings()
    settings.host, settings.port = args.host, args.port
    if "BOOKBAG_LOG_LEVEL" not in os.environ:  # quiet by default: nobody reads a test server's stderr
        settings.log_level = "warning"
    log_to_stderr(settings)
    if args.workers > 1:  # exactly as ``bookbag serve --workers N``, each worker from worker_app below
        run_workers(settings, args.workers, factory="tests.live.app_process:worker_app", access_log=False)
        return
    app = create_app(settings, services=fixed_services())
    if not args.ws_deflate:
        run_server(app, settings, access_log=False)  # exactly as ``bookbag serve`` runs it
        return
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=True,
    )


def worker_app() -> Starlette:
    """One worker process of ``--workers N`` (bookbag.server.worker_app with the fixed classifier)."""
    settings = Settings()
    if "BOOKBAG_LOG_LEVEL" not in os.environ:
        settings.log_level = "warning"
    log_to_stderr(settings)
    app = create_app(settings, services=fixed_services())
    prepare_to_serve(app)
    return app


if __name__ == "__main__":
    main()
