"""Fixtures for the live-queue and scheduler tests: the loaded workflow services (once per session) and a
merchant with a published ruleset that has escalation rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bookbag.app import create_app
from bookbag.settings import Settings
from storage.db import Database
from tests.conftest import MerchantKeys
from tests.live.app_process import fixed_services
from tests.live.servers import ThreadServer
from workflow.live.bus import EventBus, TicketEvent
from workflow.rulesets.versions import publish_ruleset
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.ingest import TicketInput, create_ticket

# The default stage graph, SLA targets, and two escalation rules the tests drive with a virtual clock.
LIVE_RULESET = """
ruleset: live-tests
description: escalations for the scheduler tests
stages: [new, triaged, assigned, in_progress, waiting_on_customer, escalated, resolved, closed]
transitions:
  new: [triaged]
  triaged: [assigned, escalated, resolved, closed]
  assigned: [in_progress, escalated, triaged, waiting_on_customer, resolved]
  in_progress: [waiting_on_customer, escalated, resolved, assigned]
  waiting_on_customer: [in_progress, resolved, closed]
  escalated: [assigned, in_progress, resolved, triaged]
  resolved: [closed, in_progress]
  closed: []
defaults: {effect: deny}
sla:
  urgent: {first_response: 1h, resolution: 8h}
  high: {first_response: 4h, resolution: 24h}
  normal: {first_response: 8h, resolution: 48h}
  low: {first_response: 24h, resolution: 96h}
escalations:
  - id: stale-triaged
    stages: [triaged]
    after: 30m
    then: {transition: escalated}
  - id: vip-stale-assigned
    when: {fact: customer.vip, eq: true}
    stages: [assigned]
    after: 10m
    then: {transition: escalated}
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def loaded_services() -> WorkflowServices:
    """The real policy engine with a fixed classifier (see ``app_process.FixedClassifier``)."""
    return fixed_services()


@dataclass
class LiveWorld:
    """A merchant with the escalation ruleset, services with their own bus, and the events it saw."""

    database: Database
    services: WorkflowServices
    merchant: MerchantKeys
    events: list[TicketEvent]

    @property
    def merchant_id(self) -> str:
        return self.merchant.merchant_id

    def at(self, now: datetime) -> WorkflowServices:
        return replace(self.services, clock=lambda: now)

    def create_ticket(self, now: datetime, *, vip: bool = False, subject: str = "where is my parcel") -> str:
        principal = Principal(self.merchant_id, Role.PARTNER, self.merchant.key_ids["partner"])
        with self.database.unit_of_work() as session:
            result = create_ticket(
                session,
                self.at(now),
                principal,
                TicketInput(subject=subject, body="ordered a week ago, nothing yet", customer_vip=vip),
            )
            return result.ticket.id


@pytest.fixture
def world(
    database: Database, loaded_services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> LiveWorld:
    bus = EventBus()
    events: list[TicketEvent] = []
    bus.add_listener(events.append)
    services = replace(loaded_services, bus=bus)
    merchant = make_merchant()
    admin = Principal(merchant.merchant_id, Role.ADMIN, merchant.key_ids["admin"])
    with database.unit_of_work() as session:
        publish_ruleset(session, services, admin, source=LIVE_RULESET, message="live tests")
    return LiveWorld(database=database, services=services, merchant=merchant, events=events)


@pytest.fixture
def make_server(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> Iterator[Callable[..., ThreadServer]]:
    """In-process servers (uvicorn in a thread) with the websocket tests' settings, ``**overrides`` on top;
    each on its own event bus. Stopped after the test."""
    running: list[ThreadServer] = []

    def make(*, ws_deflate: bool = False, **overrides: Any) -> ThreadServer:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": database_url,
            "run_migrations_on_start": False,
            "queue_coalesce_seconds": 0.05,
            "queue_safety_check_seconds": 1.0,
            "scheduler_interval_seconds": 0,
            **overrides,
        }
        services = replace(loaded_services, bus=EventBus())
        app = create_app(Settings(**values), services=services, database=database)
        server = ThreadServer(app, ws_deflate=ws_deflate)
        running.append(server.__enter__())
        return server

    yield make
    for server in running:
        server.__exit__(None, None, None)
