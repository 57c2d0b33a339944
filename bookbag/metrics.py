"""``/metrics``: the server's Prometheus metrics (``prometheus-client``), off unless ``BOOKBAG_METRICS=true``.

Protection: a bearer token. With ``BOOKBAG_METRICS_TOKEN`` set, a scrape must send
``Authorization: Bearer <token>`` (else 401); production refuses to start with metrics on and no token
(``bookbag.settings``). The endpoint is on the API's own port: the token is the boundary, not the address.

What is measured, and where it comes from:

* at the HTTP edge (``bookbag.graphql_http``): requests and latency per GraphQL operation name, errors by
  code (the top-level ``extensions.code`` of an answer, and the ``errors { code }`` of a mutation payload);
* through the workflow's seam (``workflow.metrics.WorkflowMetrics``, this class implements it): policy
  decisions by effect/actor/action, classifier latency, createTicket group sizes;
* the scheduler's tick reports (SLA breaches, escalations fired), open websockets, database connections
  checked out of the pool;
* at scrape time, from the database: queue depth and oldest age per open stage (summed over merchants; per
  merchant with ``BOOKBAG_METRICS_PER_MERCHANT=true``, one label value per merchant).

Label values are bounded: an operation name is its own label value only while fewer than
``max_operation_names`` distinct names have been seen by this process, and only when it is a valid GraphQL
name; everything else (unnamed operations too) is counted as ``_other``.

Several worker processes (``bookbag serve --workers N``): prometheus-client's multiprocess mode, chosen by
the ``PROMETHEUS_MULTIPROC_DIR`` environment variable before the library is first imported (``bookbag
serve`` sets it). Each process writes its samples to files there; whichever worker answers a scrape
reads them all, so counters are the sum over workers and gauges the sum over live workers.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from starlette.requests import Request
from starlette.responses import Response

from storage.db import Database
from workflow.queue import open_stage_totals

if TYPE_CHECKING:
    from workflow.scheduler import TickReport

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "_other"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


class OperationNames:
    """The label value of an operation name: itself while fewer than ``cap`` distinct names were seen."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if not name or not _NAME.fullmatch(name):
            return OTHER
        if name in self._seen:
            return name
        with self._lock:
            if len(self._seen) >= self.cap:
                return OTHER
            self._seen.add(name)
        return name


class QueueCollector(Collector):
    """Queue depth and oldest age per open stage, read from the database when scraped."""

    def __init__(self, db: Database, *, per_merchant: bool, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.per_merchant = per_merchant
        self.clock = clock

    def collect(self) -> Iterable[Any]:
        labels = ["stage", "merchant"] if self.per_merchant else ["stage"]
        depth = GaugeMetricFamily("bookbag_queue_depth", "Tickets in each open stage", labels=labels)
        age = GaugeMetricFamily(
            "bookbag_queue_oldest_age_seconds",
            "How long the oldest ticket of each open stage has been in it",
            labels=labels,
        )
        now = self.clock()
        with self.db.read_only() as session:
            rows = open_stage_totals(session, per_merchant=self.per_merchant)
        for row in rows:
            values = [row.stage, row.merchant_slug or ""] if self.per_merchant else [row.stage]
            depth.add_metric(values, row.count)
            if row.oldest_entered_at is not None:
                entered = row.oldest_entered_at
                if entered.tzinfo is None:
                    entered = entered.replace(tzinfo=UTC)
                age.add_metric(values, max(0.0, (now - entered).total_seconds()))
        return [depth, age]


class Metrics:
    """The process's metrics. Implements ``workflow.metrics.WorkflowMetrics``; never raises on a hot path."""

    def __init__(self, *, max_operation_names: int = 100) -> None:
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry()  # in multiprocess mode the scrape reads the files instead
        self.operations = OperationNames(max_operation_names)
        r = self.registry
        self.requests = Counter(
            "bookbag_graphql_operations", "GraphQL operations executed", ["operation"], registry=r
        )
        self.latency = Histogram(
            "bookbag_graphql_operation_seconds",
            "Time to execute one GraphQL operation",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("bookbag_errors", "Errors answered, by code", ["code"], registry=r)
        self.decisions = Counter(
            "bookbag_policy_decisions",
            "Permission decisions of the rules",
            ["effect", "actor", "action"],
            registry=r,
        )
        self.group_sizes = Histogram(
            "bookbag_group_commit_size",
            "Requests written together in one group commit",
            ["operation"],
            buckets=GROUP_BUCKETS,
            registry=r,
        )
        self.classifier = Histogram(
            "bookbag_classifier_seconds", "Time of one classifier call", buckets=LATENCY_BUCKETS, registry=r
        )
        self.classified_tickets = Counter("bookbag_classified_tickets", "Tickets classified", registry=r)
        self.sla_breaches = Counter(
            "bookbag_sla_breaches", "SLA breaches marked by the scheduler", registry=r
        )
        self.escalations = Counter(
            "bookbag_escalations_fired", "Escalations fired by the scheduler", registry=r
        )
        self.websockets = Gauge(
            "bookbag_websocket_connections",
            "Open websocket connections",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_checked_out = Gauge(
            "bookbag_db_pool_checked_out",
            "Database connections checked out of the pool",
            ["engine"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "bookbag_db_pool_size",
            "Database connections the pool keeps",
            ["engine"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self._queue: QueueCollector | None = None

    # -- workflow.metrics.WorkflowMetrics ------------------------------------------------------------------

    def policy_decision(self, effect: str, actor: str, action: str) -> None:
        self.decisions.labels(effect, actor, action).inc()

    def classified(self, seconds: float, tickets: int) -> None:
        self.classifier.observe(seconds)
        self.classified_tickets.inc(tickets)

    def group_committed(self, operation: str, size: int) -> None:
        self.group_sizes.labels(operation).observe(size)

    def error(self, code: str) -> None:
        self.errors.labels(code if _NAME.fullmatch(code) else OTHER).inc()

    # -- the API edge and the background work --------------------------------------------------------------

    def operation(self, name: str | None, seconds: float) -> str:
        """Count one executed operation; returns its label value."""
        label = self.operations.label(name)
        self.requests.labels(label).inc()
        self.latency.labels(label).observe(seconds)
        return label

    def errors_of(self, result: Any) -> None:
        """The coded errors of one ``ExecutionResult``: top-level errors and the payloads' ``errors``."""
        for error in getattr(result, "errors", None) or ():
            code = (getattr(error, "extensions", None) or {}).get("code")
            self.error(code if isinstance(code, str) else "INTERNAL")
        data = getattr(result, "data", None)
        if not isinstance(data, dict):
            return
        for value in data.values():
            if isinstance(value, dict) and isinstance(value.get("errors"), list):
                for item in value["errors"]:
                    code = item.get("code") if isinstance(item, dict) else None
                    self.error(code if isinstance(code, str) else OTHER)

    def websocket_opened(self) -> None:
        self.websockets.inc()

    def websocket_closed(self) -> None:
        self.websockets.dec()

    def scheduler_tick(self, report: TickReport) -> None:
        if report.breaches:
            self.sla_breaches.inc(len(report.breaches))
        if report.escalations:
            self.escalations.inc(len(report.escalations))

    def watch_database(self, db: Database, *, per_merchant: bool, clock: Callable[[], datetime]) -> None:
        """Pool checkouts (per engine: writes, and SQLite's separate read engine) and the queue at scrape."""
        engines = {"main": db.engine}
        if db.read_engine is not db.engine:
            engines["read"] = db.read_engine
        for name, engine in engines.items():
            checked_out = self.pool_checked_out.labels(name)
            event.listen(engine, "checkout", lambda *_, gauge=checked_out: gauge.inc())
            event.listen(engine, "checkin", lambda *_, gauge=checked_out: gauge.dec())
            size = getattr(engine.pool, "size", None)
            if callable(size):
                self.pool_size.labels(name).set(size())
        self._queue = QueueCollector(db, per_merchant=per_merchant, clock=clock)

    def exposition(self) -> bytes:
        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        output = generate_latest(registry)
        if self._queue is not None:
            output += generate_latest(_Single(self._queue))
        return output

    def process_exited(self) -> None:
        """Drop this process's live gauges from the shared files (multiprocess mode)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Single(CollectorRegistry):
    """A registry of one collector, for exposing it after another registry's text."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(auto_describe=False)
        self.register(collector)


def metrics_endpoint(metrics: Metrics, token: str | None) -> Callable[[Request], Any]:
    """The ``/metrics`` handler: the token (when set) as a bearer token, then the text format."""
    expected = f"Bearer {token}".encode() if token else None

    async def handler(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not secrets.compare_digest(given, expected):
                return Response(
                    "a metrics token is required (BOOKBAG_METRICS_TOKEN)\n",
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="bookbag-metrics"'},
                )
        from anyio import to_thread

        body = await to_thread.run_sync(metrics.exposition)  # the queue collector reads the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return handler


def prepare_multiprocess_dir(path: str) -> int:
    """Empty ``path`` of a previous run's sample files, so a new server's counters start at zero; returns
    how many files were removed. Call before the workers start."""
    os.makedirs(path, exist_ok=True)
    removed = 0
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
            removed += 1
    return removed
