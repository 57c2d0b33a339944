"""The demo merchant: keys for every role, teams and agents, and a few hundred realistic tickets spread
across stages and over the past days, so the dashboard has something to show on a fresh install."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session, select

from storage.db import Database
from storage.tables import Merchant
from workflow import actions
from workflow.demo.samples import FIRST_NAMES, SAMPLES
from workflow.errors import DomainError
from workflow.services import WorkflowServices
from workflow.tenancy import agents, merchants
from workflow.tenancy.principal import Principal, Role
from workflow.tickets import service as tickets
from workflow.tickets.ingest import TicketInput, create_ticket

TEAMS = {
    "support": [("Alex Kim", ["returns"], 25), ("Sam Rivera", ["shipping"], 25), ("Jo Patel", [], 20)],
    "senior": [("Morgan Lee", ["escalations", "billing"], 15)],
    "billing": [("Casey Novak", ["billing"], 20)],
}

# (stage path after triage, weight): where demo tickets end up
PATHS: tuple[tuple[tuple[str, ...], int], ...] = (
    ((), 4),
    (("assigned",), 3),
    (("assigned", "in_progress"), 3),
    (("assigned", "in_progress", "waiting_on_customer"), 2),
    (("escalated",), 1),
    (("assigned", "in_progress", "resolved"), 4),
    (("assigned", "in_progress", "resolved", "closed"), 3),
)


# (action type, amount range or None)
ACTIONS: tuple[tuple[str, tuple[float, float] | None], ...] = (
    ("refund", (5, 40)),
    ("refund", (40, 400)),
    ("reply", None),
    ("cancel_order", None),
    ("issue_discount", (5, 30)),
    ("reship_order", None),
)


@dataclass(frozen=True)
class DemoMerchant:
    slug: str
    ticket_count: int
    keys: dict[str, str]


def demo_exists(session: Session, slug: str) -> bool:
    return session.exec(select(Merchant).where(Merchant.slug == slug)).first() is not None


def create_demo_teams(session: Session, merchant_id: str) -> None:
    """The demo's teams and agents (the names the bundled rulesets route to)."""
    admin = Principal(merchant_id=merchant_id, role=Role.ADMIN)
    for team_name, members in TEAMS.items():
        agents.create_team(session, admin, name=team_name)
        for name, skills, capacity in members:
            email = name.lower().replace(" ", ".") + "@demo.store"
            agents.create_agent(
                session,
                admin,
                name=name,
                email=email,
                teams=[team_name],
                skills=skills,
                capacity=capacity,
            )


def create_demo(
    database: Database,
    services: WorkflowServices,
    *,
    slug: str = "demo",
    tickets: int = 300,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> DemoMerchant:
    rng = random.Random(seed)
    with database.unit_of_work() as session:
        if demo_exists(session, slug):
            raise ValueError(f"merchant {slug!r} exists already; pick another --slug")
        merchant = merchants.create_merchant(session, name="Demo Store", slug=slug)
        keys = {
            role.value: merchants.create_api_key(
                session, merchant_id=merchant.id, role=role, name=f"demo {role.value}"
            ).secret
            for role in Role
        }
        create_demo_teams(session, merchant.id)
    partner = Principal(merchant_id=merchant.id, role=Role.PARTNER)
    agent = Principal(merchant_id=merchant.id, role=Role.AGENT)
    ai = Principal(merchant_id=merchant.id, role=Role.AI)
    end = services.clock()
    start = end - timedelta(days=3)
    for index in range(tickets):
        created = start + (end - start) * (index / max(1, tickets))
        _one_ticket(database, services, rng, partner, agent, ai, created, end)
        if progress is not None and (index + 1 == tickets or (index + 1) % 25 == 0):
            progress(index + 1, tickets)
    return DemoMerchant(slug=slug, ticket_count=tickets, keys=keys)


def _one_ticket(
    database: Database,
    services: WorkflowServices,
    rng: random.Random,
    partner: Principal,
    agent: Principal,
    ai: Principal,
    created: datetime,
    end: datetime,
) -> None:
    channel, subject, body = rng.choice(SAMPLES)
    name = rng.choice(FIRST_NAMES)
    order = f"#{rng.randint(1000, 9999)}"
    vip = rng.random() < 0.1
    data = TicketInput(
        channel=channel,
        subject=subject.format(name=name, order=order),
        body=body.format(name=name, order=order),
        customer_email=f"{name.lower()}{rng.randint(1, 99)}@example.com",
        customer_name=name,
        customer_vip=vip,
        customer_lifetime_value=round(rng.uniform(20, 3000 if vip else 600), 2),
        customer_order_count=rng.randint(1, 25 if vip else 6),
        order_id=order,
        order_total=round(rng.uniform(15, 400), 2),
        order_currency="EUR",
        order_financial_status=rng.choice(["paid", "paid", "paid", "refunded", "pending"]),
        order_fulfillment_status=rng.choice(["fulfilled", "fulfilled", "unfulfilled", "partial"]),
    )
    clock_at = {"now": created}
    timed = replace(services, clock=lambda: clock_at["now"])
    with database.unit_of_work() as session:
        ticket = create_ticket(session, timed, partner, data).ticket
        path = rng.choices([p for p, _ in PATHS], weights=[w for _, w in PATHS])[0]
        for stage in path:
            if stage == ticket.stage:
                continue
            step = timedelta(minutes=rng.uniform(5, 240))
            if clock_at["now"] + step >= end:
                break
            clock_at["now"] += step
            try:
                if stage in ("in_progress", "resolved") and ticket.first_responded_at is None:
                    tickets.add_message(
                        session,
                        timed,
                        agent,
                        ticket_id=ticket.id,
                        body=f"Hi {data.customer_name}, thanks for reaching out — looking into it now.",
                    )
                tickets.transition_ticket(
                    session, timed, agent, ticket_id=ticket.id, to=stage, expected_version=None
                )
            except DomainError:
                break  # the merchant's graph has no such edge: leave the ticket where it is
        if rng.random() < 0.4:
            # a decided action, so the audit log has history for backtests and the ticket view
            kind, amount = rng.choice(ACTIONS)
            outcome = actions.request_action(
                session,
                timed,
                rng.choice([ai, ai, agent]),
                ticket_id=ticket.id,
                type=kind,
                amount=None if amount is None else round(rng.uniform(*amount), 2),
                params={"body": "Thanks, we are on it."} if kind == "reply" else {},
            )
            if outcome.request.status == "executing" and clock_at["now"] + timedelta(minutes=2) < end:
                # the store's backend carries the refund (or cancellation…) out and reports back
                clock_at["now"] += timedelta(minutes=rng.uniform(0.2, 2))
                succeeded = rng.random() < 0.9
                actions.complete_action(
                    session,
                    timed,
                    partner,
                    action_id=outcome.request.id,
                    outcome="succeeded" if succeeded else "failed",
                    external_ref=f"demo-{rng.randrange(10**6):06d}" if succeeded else None,
                    message=None if succeeded else "the payment provider declined the refund",
                )
