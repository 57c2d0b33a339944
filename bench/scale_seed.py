"""Seeding for bench/scale_bench.py: years of one store's tickets with their whole history, written in bulk.

A merchant receives ``RATE`` tickets a day (two smaller merchants share the tables at a twentieth of that
each), so 10k, 100k and 1M tickets are 10, 100 and 1,000 days of history ending now, and the open backlog
is the same at every size: only the history behind it grows. Every day's tickets come from a random
generator seeded with that day's distance from now, so the last ten days are the same tickets at every
size.

Each ticket lives the life the app would record (``workflow.tickets.ingest``, ``workflow.tickets`` (transitions, messages, assignment),
``workflow.scheduler``), cut off at the seeding moment: created by a partner key, moved ``new → triaged →
assigned`` by the system at once (routing as the bundled ruleset does: VIPs and urgent tickets to
``senior``, billing categories to ``billing``, the rest to ``support``, an agent of the team), picked up by
an agent, answered, worked, resolved (some through ``waiting_on_customer``, some reopened), closed; some
closed as spam without an answer. High-priority tickets left in ``assigned`` for 4 h are escalated by the
``high-stale`` rule and customers silent for 7 days are closed by ``waiting-too-long`` (an escalation
firing and a ``ticket.escalated`` audit row each); a due time that passes while its target is pending is
marked as the scheduler marks it (``sla_breached_at`` = the due time, a ``ticket.sla_breached`` row). Rows:
the ticket, its stage transitions, messages, audit rows (``ticket.created``, ``ticket.routed`` with the facts
and routing decision of a real ingest, ``ticket.transitioned``, ``message.added``, ``ticket.escalated``,
``ticket.sla_breached``), escalation firings, its ``ticket_report_states`` row and its share of
``report_counts``, both from ``workflow.reports.rollups.contributions`` — the function the units of work
run — and summed per split dimension as ``report_rollups.apply`` sums them. Agents' ``open_tickets`` and the
merchants' queue versions are set to match. Action requests and corrections are not seeded.

PostgreSQL: ``COPY`` (psycopg), with the bulk tables' secondary indexes dropped during the load and built
again after it, and foreign-key triggers off for the load's session (``session_replication_role``);
SQLite: ``executemany`` in one transaction per day.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

RATE = 1000  # the main merchant's tickets a day
OTHERS = (("scale-other-a", 20), ("scale-other-b", 20))  # (slug, RATE divided by)
MAIN_SLUG = "scale-main"
TEAMS = {"support": 12, "billing": 6, "senior": 4, "returns": 3}  # agents per team
SLA = {  # the bundled ruleset's targets (rulesets/default.yaml)
    "urgent": (timedelta(hours=1), timedelta(hours=8)),
    "high": (timedelta(hours=4), timedelta(hours=24)),
    "normal": (timedelta(hours=8), timedelta(days=3)),
    "low": (timedelta(days=1), timedelta(days=7)),
}
PRIORITIES = ["urgent"] * 4 + ["high"] * 16 + ["normal"] * 62 + ["low"] * 18
CHANNELS = ["email"] * 6 + ["chat"] * 2 + ["contact_form", "phone", "social", "api"]
BILLING = {"refund_return", "payment_billing", "invoice", "cancel_order"}
SHIPPING = {"shipping_delivery", "order_status", "order_change"}
WORDS = ["mug", "lamp", "chair", "teapot", "parcel", "jacket", "scarf", "kettle"]
SUBJECTS = [
    "Where is my order {o}?",
    "Refund for a broken {w}",
    "Change the address of order {o}",
    "Invoice for order {o}",
    "Wrong size {w}",
    "Cancel order {o} please",
    "Discount code does not work",
]
BODIES = [
    "Order {o} arrived with a broken {w}. I would like a refund please.",
    "My parcel for order {o} has not moved for a week, where is it?",
    "Please send order {o} to my new address, I moved last week.",
    "I need an invoice with VAT for order {o} for my company.",
    "The {w} I got is the wrong colour, can I exchange it for another one?",
]
AGENT_REPLIES = [
    "Thanks for writing, I am looking into order {o} now.",
    "Sorry about that! A replacement is on its way.",
    "I have refunded the amount to your card; it shows in 3-5 days.",
    "Could you send a photo of the damage, please?",
]
CUSTOMER_REPLIES = [
    "Here is the photo you asked for.",
    "Thank you, that works for me.",
    "Still nothing arrived.",
]
NAMES = [
    "Alice Martin",
    "Bob Stone",
    "Carol Diaz",
    "Dan Wu",
    "Eve Novak",
    "Farah Ali",
    "Gus Berg",
    "Hana Sato",
]


class Table(NamedTuple):
    name: str
    columns: tuple[str, ...]


TICKETS = Table(
    "tickets",
    (
        "id",
        "merchant_id",
        "channel",
        "subject",
        "body",
        "customer_email",
        "customer_name",
        "customer_vip",
        "customer_lifetime_value",
        "customer_order_count",
        "order_id",
        "order_total",
        "order_currency",
        "order_financial_status",
        "order_fulfillment_status",
        "order_created_at",
        "order_delivered_at",
        "category",
        "category_confidence",
        "priority",
        "priority_confidence",
        "model_version",
        "language",
        "stage",
        "team_id",
        "assignee_id",
        "tags",
        "needs_human",
        "routing_rule_id",
        "first_response_due_at",
        "resolution_due_at",
        "first_responded_at",
        "resolved_at",
        "sla_breached_at",
        "version",
        "created_at",
        "updated_at",
        "stage_entered_at",
    ),
)
TRANSITIONS = Table(
    "stage_transitions",
    tuple(["merchant_id", "ticket_id", "from_stage", "to_stage", "seconds_in_from_stage", "actor", "at"]),
)
MESSAGES = Table(
    "messages",
    tuple(["id", "merchant_id", "ticket_id", "author_type", "author_key_id", "body", "created_at"]),
)
AUDIT = Table(
    "audit_events",
    tuple(
        [
            "merchant_id",
            "ticket_id",
            "kind",
            "actor",
            "api_key_id",
            "before",
            "after",
            "ruleset_version",
            "model_version",
            "facts",
            "decision",
            "created_at",
        ]
    ),
)
FIRINGS = Table(
    "escalation_firings", tuple(["merchant_id", "ticket_id", "rule_id", "stage_entered_at", "fired_at"])
)
STATES = Table("ticket_report_states", ("ticket_id", "merchant_id", "entries"))
COUNTS = Table(
    "report_counts", tuple(["merchant_id", "dim", "metric", "day", "key", "value", "bin", "n", "total"])
)
ALL = (TICKETS, TRANSITIONS, MESSAGES, AUDIT, FIRINGS, STATES)
SECS = timedelta(seconds=1)


@dataclass
class MerchantPlan:
    """What the seeding needs of one merchant made through the app (``prepare``)."""

    id: str
    slug: str
    rate: float  # tickets a day
    teams: dict[str, str]  # name → id
    members: dict[str, list[str]]  # team id → agent ids
    keys: dict[str, str]  # role → key id
    secrets: dict[str, str]  # role → the key itself (for the bench's requests)
    ruleset_version: int
    model_version: str
    facts: str  # the JSON text of a real ingest's facts (ticket.routed)
    labels: list[str]
    open_load: Counter[str] = field(default_factory=Counter)
    tickets: int = 0


class _Row(NamedTuple):  # what report_rollups.contributions reads of a ticket and of a transition
    team_id: Any
    category: Any
    priority: Any
    channel: Any
    created_at: Any
    first_responded_at: Any
    first_response_due_at: Any
    resolved_at: Any
    resolution_due_at: Any
    sla_breached_at: Any


class _Move(NamedTuple):
    from_stage: Any
    to_stage: Any
    seconds_in_from_stage: Any
    at: Any


class _Firing(NamedTuple):
    rule_id: str
    fired_at: datetime


@dataclass
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t.name: [] for t in ALL})

    def clear(self) -> None:
        for rows in self.rows.values():
            rows.clear()


def prepare(database: Any, services: Any, slug: str, rate: float) -> MerchantPlan:
    """The merchant, its keys, teams, agents and the bundled ruleset, made through the app; one real ticket
    through ``create_ticket`` gives the facts an ingest records (reused as every seeded ticket's)."""
    from pathlib import Path

    from sqlmodel import select

    from storage.tables import AuditEvent
    from workflow.rulesets.versions import publish_ruleset
    from workflow.tenancy import agents
    from workflow.tenancy.merchants import create_api_key, create_merchant
    from workflow.tenancy.principal import Principal, Role
    from workflow.tickets.ingest import TicketInput, create_ticket

    source = (Path(__file__).resolve().parent.parent / "rulesets" / "default.yaml").read_text()
    with database.unit_of_work() as session:
        merchant = create_merchant(session, name=slug, slug=slug)
        issued = {
            role: create_api_key(session, merchant_id=merchant.id, role=role, name="scale bench")
            for role in ("admin", "agent", "partner", "ai")
        }
        keys = {role: k.key.id for role, k in issued.items()}
        admin = Principal(merchant_id=merchant.id, role=Role.ADMIN, key_id=keys["admin"])
        version = publish_ruleset(session, services, admin, source=source, message="scale bench").version
        teams, members = {}, {}
        for name, size in TEAMS.items():
            team = agents.create_team(session, admin, name=name)
            teams[name] = team.id
            members[team.id] = [
                agents.create_agent(
                    session,
                    admin,
                    name=f"{name} agent {i}",
                    email=f"{name}{i}@{slug}.test",
                    teams=[name],
                    skills=["billing", "shipping"],
                    capacity=1000,
                ).id
                for i in range(size)
            ]
    partner = Principal(merchant_id=merchant.id, role=Role.PARTNER, key_id=keys["partner"])
    with database.unit_of_work() as session:
        made = create_ticket(
            session,
            services,
            partner,
            TicketInput(
                subject="Where is my order #1001?",
                body="Tracking has not moved for a week.",
                customer_email="first@example.com",
                order_id="#1001",
            ),
        ).ticket
    with database.read_only() as session:
        routed = session.exec(
            select(AuditEvent).where(AuditEvent.ticket_id == made.id, AuditEvent.kind == "ticket.routed")
        ).one()
    return MerchantPlan(
        id=merchant.id,
        slug=slug,
        rate=rate,
        teams=teams,
        members=members,
        keys=keys,
        secrets={role: k.secret for role, k in issued.items()},
        ruleset_version=version,
        model_version=made.model_version or "",
        facts=json.dumps(routed.facts),
        labels=list(services.classifier.info.labels),
    )


def _lognormal(rng: random.Random, median_seconds: float, sigma: float, cap: float) -> timedelta:
    return timedelta(seconds=min(cap, median_seconds * math.exp(rng.gauss(0.0, sigma))))


def _q(value: Any) -> str:
    """A JSON value for the strings the seeding writes (ids, stage names, labels: nothing to escape)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _snapshot(t: dict[str, Any]) -> str:
    """``workflow.tickets.changes.snapshot`` as the JSON the audit row holds (written by hand: json.dumps is most of
    the seeding's time otherwise)."""
    tags = ", ".join(f'"{tag}"' for tag in t["tags"])
    return (
        f'{{"stage": "{t["stage"]}", "priority": "{t["priority"]}", "category": {_q(t["category"])}, '
        f'"team_id": {_q(t["team_id"])}, "assignee_id": {_q(t["assignee_id"])}, "tags": [{tags}], '
        f'"needs_human": {_q(t["needs_human"])}, "version": {t["version"]}}}'
    )


def _entries(entries: dict[Any, tuple[int, float]]) -> str:
    """The JSON of a ``ticket_report_states.entries`` list (as the app's JSON column writes it)."""
    return (
        "["
        + ", ".join(
            f'["{k[0]}", "{k[1]}", "{k[2]}", "{k[3]}", "{k[4]}", "{k[5]}", "{k[6]}", {k[7]}, {n}, {total!r}]'
            for k, (n, total) in sorted(entries.items())
        )
        + "]"
    )


class _Life:
    """One ticket's history as the app would write it, up to ``now``."""

    def __init__(
        self,
        number: int,
        rng: random.Random,
        plan: MerchantPlan,
        created: datetime,
        now: datetime,
        batch: Batch,
        rollups: Counter[tuple[Any, ...]],
        totals: dict[tuple[Any, ...], float],
    ) -> None:
        self.rng, self.plan, self.now, self.batch = rng, plan, now, batch
        self.rollups, self.totals = rollups, totals
        self.moves: list[_Move] = []
        self.firings: list[_Firing] = []
        n = number
        plan.tickets += 1
        vip = rng.random() < 0.05
        priority = "high" if vip else rng.choice(PRIORITIES)
        category = rng.choice(plan.labels)
        team = "senior" if vip or priority == "urgent" else "billing" if category in BILLING else "support"
        rule = (
            "vip-to-senior"
            if vip
            else "urgent-to-senior"
            if priority == "urgent"
            else "billing-to-billing"
            if category in BILLING
            else "shipping-to-support"
            if category in SHIPPING
            else "everything-else"
        )
        team_id = plan.teams[team]
        order = f"#{100000 + n}"
        word = rng.choice(WORDS)
        first, resolution = SLA[priority]
        self.t: dict[str, Any] = {
            "id": f"tkt_{rng.getrandbits(80):020x}",
            "merchant_id": plan.id,
            "channel": rng.choice(CHANNELS),
            "subject": rng.choice(SUBJECTS).format(o=order, w=word),
            "body": rng.choice(BODIES).format(o=order, w=word),
            "customer_email": f"c{rng.randrange(max(1, int(plan.rate * 400)))}@{plan.slug}.example.com",
            "customer_name": rng.choice(NAMES),
            "customer_vip": vip,
            "customer_lifetime_value": round(rng.uniform(20, 2000), 2),
            "customer_order_count": rng.randrange(1, 30),
            "order_id": order,
            "order_total": round(rng.uniform(10, 400), 2),
            "order_currency": "EUR",
            "order_financial_status": "paid",
            "order_fulfillment_status": rng.choice(["fulfilled", "unfulfilled", "partial"]),
            "order_created_at": created - timedelta(days=rng.randrange(1, 20)),
            "order_delivered_at": None,
            "category": category,
            "category_confidence": round(rng.uniform(0.4, 0.99), 3),
            "priority": priority,
            "priority_confidence": round(rng.uniform(0.4, 0.99), 3),
            "model_version": plan.model_version,
            "language": "en",
            "stage": "new",
            "team_id": team_id,
            "assignee_id": None,
            "tags": [],
            "needs_human": rng.random() < 0.03,  # a handoff rule matched (legal threat, repeated contact)
            "routing_rule_id": rule,
            "first_response_due_at": created + first,
            "resolution_due_at": created + resolution,
            "first_responded_at": None,
            "resolved_at": None,
            "sla_breached_at": None,
            "version": 1,
            "created_at": created,
            "updated_at": created,
            "stage_entered_at": created,
        }
        self.agent = rng.choice(plan.members[team_id])
        self.at = created
        self.alive = True

    # -- the app's writes ----------------------------------------------------------------------------------

    def audit(
        self,
        kind: str,
        actor: str,
        key: str | None,
        before: str,
        after: str,
        at: datetime,
        facts: str | None = None,
        decision: str | None = None,
    ) -> None:
        self.batch.rows["audit_events"].append(
            (
                self.plan.id,
                self.t["id"],
                kind,
                actor,
                key,
                before,
                after,
                self.plan.ruleset_version,
                self.t["model_version"],
                facts,
                decision,
                at,
            )
        )

    def move(self, to: str, at: datetime, actor: str, reason: str | None = None) -> None:
        t = self.t
        before = _snapshot(t)
        spent = max(0.0, (at - t["stage_entered_at"]).total_seconds())
        self.moves.append(_Move(t["stage"], to, spent, at))
        self.batch.rows["stage_transitions"].append((self.plan.id, t["id"], t["stage"], to, spent, actor, at))
        closed = ("resolved", "closed")
        if to in closed and t["resolved_at"] is None:
            t["resolved_at"] = at
        elif to not in closed:
            t["resolved_at"] = None
        t["stage"], t["stage_entered_at"], t["updated_at"] = to, at, at
        t["version"] += 1
        key = self.plan.keys["agent"] if actor == "agent" else self.plan.keys["ai"] if actor == "ai" else None
        self.audit(
            "ticket.transitioned",
            actor,
            key,
            before,
            _snapshot(t),
            at,
            decision=f'{{"reason": "{reason}"}}' if reason else None,
        )

    def message(self, author: str, at: datetime, body: str) -> None:
        t = self.t
        key = self.plan.keys["partner" if author == "customer" else author]
        message_id = f"msg_{self.rng.getrandbits(80):020x}"
        self.batch.rows["messages"].append((message_id, self.plan.id, t["id"], author, key, body, at))
        if author in ("agent", "ai") and t["first_responded_at"] is None:
            t["first_responded_at"] = at
        t["version"] += 1
        t["updated_at"] = at
        actor = {"customer": "partner"}.get(author, author)
        self.audit(
            "message.added", actor, key, "{}", f'{{"message_id": "{message_id}", "author": "{author}"}}', at
        )

    def escalate(
        self,
        rule: str,
        after: timedelta,
        then: dict[str, Any],
        at: datetime,
        to: str,
        tags: list[str] | None = None,
    ) -> None:
        t = self.t
        entered, stage, before = t["stage_entered_at"], t["stage"], _snapshot(t)
        self.firings.append(_Firing(rule, at))
        self.batch.rows["escalation_firings"].append((self.plan.id, t["id"], rule, entered, at))
        if tags:
            t["tags"] = sorted({*t["tags"], *tags})
        self.move(to, at, "system", reason=f"escalation {rule}")
        decision = {
            "rule_id": rule,
            "after_seconds": after.total_seconds(),
            "then": then,
            "stage": stage,
            "stage_entered_at": entered.isoformat(),
            "applied": {"transition": to, **({"tags": tags} if tags else {})},
            "skipped": {},
        }
        self.audit(
            "ticket.escalated",
            "system",
            None,
            before,
            _snapshot(t),
            at,
            self.plan.facts,
            json.dumps(decision),
        )

    def breaches_until(self, upto: datetime) -> None:
        """The scheduler's pass over the time since the last change (the stage did not change in it)."""
        t = self.t
        if t["sla_breached_at"] is not None or t["stage"] in ("resolved", "closed"):
            return
        due = None
        if t["first_responded_at"] is None and t["first_response_due_at"] < upto:
            due, kind = t["first_response_due_at"], "first_response"
        elif t["resolved_at"] is None and t["resolution_due_at"] < upto:
            due, kind = t["resolution_due_at"], "resolution"
        if due is None:
            return
        noticed = due + 5 * SECS  # the next tick
        if noticed > upto:
            return
        before = _snapshot(t)
        t["sla_breached_at"] = due
        t["version"] += 1
        t["updated_at"] = noticed
        after = {**json.loads(_snapshot(t)), "sla_breached_at": due.isoformat()}
        self.audit(
            "ticket.sla_breached",
            "system",
            None,
            before,
            json.dumps(after),
            noticed,
            self.plan.facts,
            json.dumps({"sla": kind, "due_at": due.isoformat(), "detected_at": noticed.isoformat()}),
        )

    def at_(self, delay: timedelta) -> bool:
        """Move the clock on by ``delay``; False (and the life ends) when that is past the seeding moment."""
        if not self.alive:
            return False
        when = self.at + delay
        self.breaches_until(min(when, self.now))
        if when > self.now:
            self.alive = False
            return False
        self.at = when
        return True

    # -- the life ------------------------------------------------------------------------------------------

    def live(self) -> None:
        rng, t, plan = self.rng, self.t, self.plan
        created = t["created_at"]
        partner = plan.keys["partner"]
        self.moves.append(_Move(None, "new", None, created))
        self.batch.rows["stage_transitions"].append((plan.id, t["id"], None, "new", None, "partner", created))
        self.audit("ticket.created", "partner", partner, "{}", _snapshot(t), created)
        routing = {
            "rule_id": t["routing_rule_id"],
            "team": next(n for n, i in plan.teams.items() if i == t["team_id"]),
            "assignee_id": self.agent,
        }
        self.audit("ticket.routed", "system", None, "{}", "{}", created, plan.facts, json.dumps(routing))
        self.move("triaged", created, "system", reason="classified and routed")
        t["assignee_id"] = self.agent
        self.move("assigned", created, "system", reason=f"routed by {t['routing_rule_id']}")
        order = t["order_id"]
        pickup = _lognormal(rng, 2700, 1.2, 3 * 86400)
        if rng.random() < 0.06:  # spam or a duplicate: closed without an answer
            if self.at_(pickup):
                self.move("resolved", self.at, "agent")
            self.closing()
            return
        if t["priority"] == "high" and pickup > timedelta(hours=4):
            if not self.at_(timedelta(hours=4)):
                return
            self.escalate("high-stale", timedelta(hours=4), {"transition": "escalated"}, self.at, "escalated")
            pickup -= timedelta(hours=4)
        if not self.at_(pickup):
            return
        self.move("in_progress", self.at, "agent")
        if not self.at_(timedelta(seconds=rng.randrange(60, 900))):
            return
        self.message("agent", self.at, rng.choice(AGENT_REPLIES).format(o=order))
        if not self.at_(_lognormal(rng, 7200, 1.1, 40 * 3600)):
            return
        if rng.random() < 0.35:
            self.message("agent", self.at, "Could you tell us a bit more, please?")
            self.move("waiting_on_customer", self.at, "agent")
            silence = _lognormal(rng, 18 * 3600, 1.3, 20 * 86400)
            if silence > timedelta(days=7):
                if self.at_(timedelta(days=7)):
                    self.escalate(
                        "waiting-too-long",
                        timedelta(days=7),
                        {"transition": "closed", "tags": ["auto-closed"]},
                        self.at,
                        "closed",
                        tags=["auto-closed"],
                    )
                return
            if not self.at_(silence):
                return
            self.message("customer", self.at, rng.choice(CUSTOMER_REPLIES))
            self.move("in_progress", self.at, "agent")
            if not self.at_(_lognormal(rng, 3600, 1.0, 30 * 3600)):
                return
        self.message("agent", self.at, rng.choice(AGENT_REPLIES).format(o=order))
        self.move("resolved", self.at, "agent")
        if rng.random() < 0.06:  # reopened by the customer
            if not self.at_(_lognormal(rng, 86400, 0.8, 5 * 86400)):
                return
            self.message("customer", self.at, "It happened again, the new one is broken too.")
            self.move("in_progress", self.at, "agent")
            if not self.at_(_lognormal(rng, 3600, 1.0, 30 * 3600)):
                return
            self.message("agent", self.at, rng.choice(AGENT_REPLIES).format(o=order))
            self.move("resolved", self.at, "agent")
        self.closing()

    def closing(self) -> None:
        if (
            self.alive
            and self.t["stage"] == "resolved"
            and self.at_(_lognormal(self.rng, 2 * 86400, 0.3, 6 * 86400))
        ):
            self.move("closed", self.at, "ai")

    def finish(self) -> None:
        """The ticket row, its report state and its share of the roll-ups."""
        from workflow.reports.rollups import contributions

        t = self.t
        self.breaches_until(self.now)
        self.batch.rows["tickets"].append(
            tuple(
                "[" + ", ".join(f'"{g}"' for g in t["tags"]) + "]" if c == "tags" else t[c]
                for c in TICKETS.columns
            )
        )
        if t["stage"] not in ("resolved", "closed") and t["assignee_id"]:
            self.plan.open_load[t["assignee_id"]] += 1
        row = _Row(*(t[c] for c in _Row._fields))
        entries = contributions(row, self.moves, (), (), self.firings)
        self.batch.rows["ticket_report_states"].append(
            (
                t["id"],
                t["merchant_id"],
                _entries(entries),
            )
        )
        for key, (n, total) in entries.items():
            full = (t["merchant_id"], *key)
            self.rollups[full] += n
            self.totals[full] = self.totals.get(full, 0.0) + total


def days(total: int, now: datetime) -> Iterator[tuple[int, datetime]]:
    """(days before now, that day's start) for the history of ``total`` main-merchant tickets, oldest first."""
    span = max(1, math.ceil(total / RATE))
    for back in range(span, 0, -1):
        yield back, now - timedelta(days=back)


def generate(
    plans: list[MerchantPlan],
    total: int,
    now: datetime,
    write: Callable[[Batch], None],
    part: int = 0,
    parts: int = 1,
) -> tuple[Counter[tuple[Any, ...]], dict[tuple[Any, ...], float]]:
    """Every merchant's tickets over the days ``total`` asks for, day by day (``write`` each day's rows);
    returns the roll-up entries per merchant (summed over tickets, not yet over dimensions). With
    ``parts`` > 1, only the days ``part`` of ``parts`` (every ``parts``-th day): one share of the work."""
    rollups: Counter[tuple[Any, ...]] = Counter()
    totals: dict[tuple[Any, ...], float] = {}
    batch = Batch()
    main = plans[0]
    span = max(1, math.ceil(total / RATE))
    for back, start in days(total, now):
        if back % parts != part:
            continue
        rng = random.Random(back * 7919 + 1)
        arrivals: list[tuple[datetime, MerchantPlan]] = []
        for plan in plans:
            count = plan.rate if plan is not main else RATE if back < span else total - (span - 1) * RATE
            for _ in range(int(count)):
                arrivals.append((start + timedelta(seconds=rng.random() * 86400), plan))
        arrivals.sort(key=lambda a: a[0])
        for i, (created, plan) in enumerate(arrivals):
            created = created.replace(microsecond=(created.microsecond // 1000) * 1000)
            life = _Life(back * 10_000 + i, rng, plan, created, now, batch, rollups, totals)
            life.live()
            life.finish()
        write(batch)
        batch.clear()
    return rollups, totals


def count_rows(
    rollups: Counter[tuple[Any, ...]], totals: dict[tuple[Any, ...], float], existing: list[Any]
) -> list[tuple[Any, ...]]:
    """``report_counts`` rows: every entry once per split dimension (as ``report_rollups.apply`` adds them),
    plus the ``existing`` rows (what the tickets made through the app added)."""
    from workflow.reports.rollups import DIMENSIONS

    per_row: dict[tuple[Any, ...], list[float]] = {}
    for merchant, dim, metric, day, key, value, index, n, total in existing:
        per_row[(merchant, dim, metric, day.isoformat(), key, value, index)] = [n, total]
    for (merchant, day, metric, key, team, category, priority, channel, index), n in rollups.items():
        total = totals[(merchant, day, metric, key, team, category, priority, channel, index)]
        for dim, value in zip(DIMENSIONS, ("", team, category, priority, channel), strict=True):
            acc = per_row.setdefault((merchant, dim, metric, day, key, value, index), [0, 0.0])
            acc[0] += n
            acc[1] += total
    return [
        (merchant, dim, metric, date.fromisoformat(day), key, value, index, int(n), float(total))
        for (merchant, dim, metric, day, key, value, index), (n, total) in sorted(per_row.items())
        if n or total
    ]


# -- writers -------------------------------------------------------------------------------------------------


class PostgresWriter:
    """COPY into the tables; secondary indexes of the bulk tables dropped first and rebuilt by ``close``."""

    BULK = (
        "tickets",
        "stage_transitions",
        "messages",
        "audit_events",
        "escalation_firings",
        "ticket_report_states",
        "report_counts",
    )

    def __init__(self, url: str, *, drop_indexes: bool = True) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=False)
        self.conn.execute("SET session_replication_role = replica")  # no FK triggers during the load
        self.indexes: list[tuple[str, str]] = []
        self.rows = 0
        if not drop_indexes:
            return
        rows = self.conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
            "AND i.tablename = ANY(%s) AND i.indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
            (list(self.BULK),),
        ).fetchall()
        self.indexes = [(name, sql) for name, sql in rows]
        for name, _ in self.indexes:
            self.conn.execute(f'DROP INDEX "{name}"')
        self.conn.commit()
        self.rows = 0

    def __call__(self, batch: Batch) -> None:
        with self.conn.cursor() as cur:
            for table in ALL:
                rows = batch.rows[table.name]
                if not rows:
                    continue
                with cur.copy(f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                self.rows += len(rows)
        self.conn.commit()

    def counts(self, rows: list[tuple[Any, ...]]) -> None:
        self(Batch())
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY report_counts ({', '.join(COUNTS.columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        self.conn.commit()

    def set(self, statement: str, params: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(statement.replace("?", "%s"), params)
        self.conn.commit()

    def close(self) -> float:
        began = time.perf_counter()
        self.conn.execute("SET maintenance_work_mem = '256MB'")
        for _, sql in self.indexes:
            self.conn.execute(sql)
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        self.conn.close()
        return time.perf_counter() - began


class SqliteWriter:
    """executemany in one transaction per batch, values as SQLAlchemy stores them on SQLite."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.rows = 0

    @staticmethod
    def _value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, date):
            return v.isoformat()
        return v

    def __call__(self, batch: Batch) -> None:
        with self.conn:
            for table in ALL:
                rows = batch.rows[table.name]
                if rows:
                    marks = ", ".join("?" * len(table.columns))
                    self.conn.executemany(
                        f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})",
                        [tuple(map(self._value, row)) for row in rows],
                    )
                    self.rows += len(rows)

    def counts(self, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(COUNTS.columns))
        with self.conn:
            self.conn.executemany(
                f"INSERT INTO report_counts ({', '.join(COUNTS.columns)}) VALUES ({marks})",
                [tuple(map(self._value, row)) for row in rows],
            )

    def set(self, statement: str, params: list[tuple[Any, ...]]) -> None:
        with self.conn:
            self.conn.executemany(statement, params)

    def close(self) -> float:
        began = time.perf_counter()
        self.conn.execute("ANALYZE")
        self.conn.close()
        return time.perf_counter() - began


PARTS = 2  # generating processes on PostgreSQL (the generation is Python; the machine has two cores)


def _share(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """One process's share of the days: generated and COPYed on a connection of its own."""
    plans, total, now, conninfo, part, parts = args
    writer = PostgresWriter(conninfo, drop_indexes=False)
    rollups, totals = generate(plans, total, now, writer, part, parts)
    writer.conn.close()
    return (
        rollups,
        totals,
        {p.id: p.tickets for p in plans},
        {p.id: p.open_load for p in plans},
        writer.rows,
    )


def seed(database: Any, services: Any, url: str, total: int, now: datetime) -> dict[str, Any]:
    """Make the merchants through the app, then write ``total`` main-merchant tickets' history in bulk."""
    plans = [prepare(database, services, MAIN_SLUG, RATE)]
    plans += [prepare(database, services, slug, RATE / share) for slug, share in OTHERS]
    began = time.perf_counter()
    from sqlalchemy.engine import make_url

    if database.engine.dialect.name == "postgresql":
        writer: Any = PostgresWriter(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
    else:
        writer = SqliteWriter(database.engine.url.database)
    if isinstance(writer, PostgresWriter):  # two processes generate alternate days, each COPYing its own
        import multiprocessing

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with multiprocessing.get_context("spawn").Pool(PARTS) as pool:
            shares = pool.map(_share, [(plans, total, now, conninfo, part, PARTS) for part in range(PARTS)])
        rollups: Counter[tuple[Any, ...]] = Counter()
        totals: dict[tuple[Any, ...], float] = {}
        for share_rollups, share_totals, tickets, loads, rows in shares:
            rollups.update(share_rollups)
            for key, value in share_totals.items():
                totals[key] = totals.get(key, 0.0) + value
            for plan in plans:
                plan.tickets += tickets[plan.id]
                plan.open_load.update(loads[plan.id])
            writer.rows += rows
    else:
        rollups, totals = generate(plans, total, now, writer)
    with database.engine.begin() as conn:  # the rows the tickets made through the app added, merged in
        existing = list(
            conn.exec_driver_sql(
                "SELECT merchant_id, dim, metric, day, key, value, bin, n, total FROM report_counts"
            )
        )
        conn.exec_driver_sql("DELETE FROM report_counts")
    existing = [
        (*r[:3], r[3] if isinstance(r[3], date) else date.fromisoformat(r[3]), *r[4:]) for r in existing
    ]
    writer.counts(count_rows(rollups, totals, existing))
    writer.set(
        "UPDATE agents SET open_tickets = open_tickets + ? WHERE id = ?",
        [(n, agent) for plan in plans for agent, n in plan.open_load.items()],
    )
    writer.set(
        "UPDATE queue_state SET version = version + ? WHERE merchant_id = ?",
        [(plan.tickets, plan.id) for plan in plans],
    )
    load_seconds = time.perf_counter() - began
    rows = writer.rows
    index_seconds = writer.close()
    main = plans[0]
    return {
        "merchant_id": main.id,
        "keys": main.secrets,
        "teams": main.teams,
        "agents": [a for ids in main.members.values() for a in ids],
        "tickets": {p.slug: p.tickets + 1 for p in plans},
        "rows": rows,
        "seeded_at": now.isoformat(),
        "load_seconds": round(load_seconds, 1),
        "index_seconds": round(index_seconds, 1),
    }
