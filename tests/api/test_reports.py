# mypy: disable-error-code="misc,arg-type"
# (the seeded history is a list of (time, closure, name) events built from lambdas with default arguments)
"""Reports: every figure the `report` query answers (from the roll-ups) equals a brute-force recount over the
raw tables (tickets, stage transitions, action requests, corrections, escalation firings) of a seeded
history of ten days, for each split and granularity, on SQLite and PostgreSQL, through HTTP. Another
merchant's history never shows up."""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from storage.db import Database
from storage.tables import ActionRequest, ClassificationCorrection, EscalationFiring, StageTransition, Ticket
from tests.api.conftest import Api
from tests.conftest import MerchantKeys
from workflow import actions
from workflow.errors import DomainError
from workflow.reports.rollups import bin_value, duration_bin
from workflow.scheduler import run_due_work
from workflow.services import WorkflowServices
from workflow.stages import CLOSED_STAGES
from workflow.tenancy import agents
from workflow.tenancy.principal import Principal, Role
from workflow.tickets import service as tickets
from workflow.tickets.ingest import TicketInput, create_ticket

BASE = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday
START, END = date(2026, 11, 4), date(2026, 11, 10)

REPORT = """query($start: Date, $end: Date, $g: ReportGranularity!, $s: ReportSplit!) {
  report(start: $start, end: $end, granularity: $g, split: $s) {
    start end buckets groups { value label }
    volume { bucket group created closed reopened backlog }
    sla { bucket group firstResponseMet firstResponseMissed resolutionMet resolutionMissed breaches escalations
          firstResponseAttainment }
    durations { bucket group metric fromStage toStage decision count meanSeconds p50Seconds p90Seconds }
    trends { bucket group metric count meanSeconds p50Seconds p90Seconds }
    actions { group actor type effect status count }
    corrections { group fromCategory toCategory count }
  }
}"""

SUBJECTS = [
    ("Refund for a broken mug", "The mug arrived broken, I want my money back."),
    ("Where is my parcel", "My order has not arrived after ten days."),
    ("Change my address", "Please ship order 1001 to my new address."),
    ("Invoice copy", "Can I get an invoice for my last order?"),
    ("Chargeback", "I will file a chargeback with my lawyer if this is not fixed."),
]


def seed_history(database: Database, services: WorkflowServices, m: MerchantKeys, seed: int) -> None:
    """Ten days of tickets: ingest, assignment, replies, resolutions and reopenings, AI actions allowed,
    approved, rejected and denied, corrections, and scheduler ticks that escalate and mark breaches."""
    rng = random.Random(seed)

    def who(role: Role) -> Principal:
        return Principal(merchant_id=m.merchant_id, role=role, key_id=m.key_ids[role.value])

    admin, agent, ai, partner = who(Role.ADMIN), who(Role.AGENT), who(Role.AI), who(Role.PARTNER)
    at = {"now": BASE}
    clocked = replace(services, clock=lambda: at["now"])
    with database.unit_of_work() as session:
        for team in ("support", "billing", "senior"):
            agents.create_team(session, admin, name=team)
        staff = [
            agents.create_agent(
                session, admin, name=f"Agent {i}", email=f"a{i}@shop.test", teams=[team], capacity=1000
            ).id
            for i, team in enumerate(("support", "billing", "senior", "support"))
        ]
    events: list[tuple[datetime, Callable[[], None], str]] = []
    made: list[str] = []

    def later(when: datetime, work: Callable[..., None], *args: Any) -> None:
        events.append((when, lambda: work(*args), work.__name__))

    def step(work: Callable[..., Any], **kwargs: Any) -> Any:
        with database.unit_of_work() as session:
            return work(session, clocked, **kwargs)

    def reply(ticket_id: str) -> None:
        step(lambda s, sv, **_: tickets.add_message(s, sv, agent, ticket_id=ticket_id, body="On it."))

    def move(ticket_id: str, to: str) -> None:
        # Not an edge from where the ticket is now (the scheduler may have moved it): nothing happens.
        with contextlib.suppress(DomainError):
            step(
                lambda s, sv, **_: tickets.transition_ticket(
                    s, sv, agent, ticket_id=ticket_id, to=to, expected_version=None
                )
            )

    def ai_action(
        ticket_id: str, type_: str, amount: float | None, decide: str | None, wait: timedelta
    ) -> None:
        try:
            outcome = step(
                lambda s, sv, **_: actions.request_action(
                    s, sv, ai, ticket_id=ticket_id, type=type_, amount=amount
                )
            )
        except DomainError:
            return
        if outcome.request.status == "pending_approval" and decide:
            action_id = outcome.request.id

            def decided() -> None:
                if decide == "approve":
                    step(lambda s, sv, **_: actions.approve_action(s, sv, agent, action_id=action_id))
                else:
                    step(
                        lambda s, sv, **_: actions.reject_action(
                            s, sv, agent, action_id=action_id, reason="no"
                        )
                    )

            later(at["now"] + wait, decided)

    def correct(ticket_id: str, category: str) -> None:
        step(
            lambda s, sv, **_: tickets.correct_classification(
                s, sv, agent, ticket_id=ticket_id, category=category
            )
        )

    def assign(ticket_id: str, agent_id: str) -> None:
        with contextlib.suppress(DomainError):
            step(
                lambda s, sv, **_: tickets.assign_ticket(s, sv, agent, ticket_id=ticket_id, agent_id=agent_id)
            )

    labels = services.classifier.info.labels
    for day in range(10):
        for i in range(6):
            created = BASE + timedelta(days=day, hours=i * 2, minutes=rng.randrange(60))
            subject, body = SUBJECTS[rng.randrange(len(SUBJECTS))]
            channel = rng.choice(["email", "chat", "contact_form"])
            events.append(
                (
                    created,
                    lambda s=subject, b=body, c=channel: made.append(
                        step(
                            lambda se, sv, **_: (
                                create_ticket(
                                    se, sv, partner, TicketInput(subject=s, body=b, channel=c)
                                ).ticket.id
                            )
                        )
                    ),
                    "create",
                )
            )
    # Work on each ticket is planned when it exists: walk the events in time order, adding as we go.
    done = 0
    while events:
        events.sort(key=lambda e: e[0])
        when, work, _name = events.pop(0)
        at["now"] = when
        work()
        if len(made) > done:  # a ticket was just created: plan its life
            ticket_id = made[-1]
            done = len(made)
            r = rng.random()
            if r < 0.8:
                later(when + timedelta(minutes=rng.randrange(5, 600)), reply, ticket_id)
            if rng.random() < 0.3:
                later(when + timedelta(minutes=rng.randrange(1, 90)), assign, ticket_id, rng.choice(staff))
            if rng.random() < 0.5:
                later(
                    when + timedelta(minutes=rng.randrange(2, 120)),
                    ai_action,
                    ticket_id,
                    rng.choice(["refund", "note", "cancel_order", "refund", "close"]),
                    rng.choice([20.0, 400.0, None]),
                    rng.choice(["approve", "reject", None]),
                    timedelta(minutes=rng.randrange(1, 300)),
                )
            if rng.random() < 0.25:
                later(when + timedelta(minutes=rng.randrange(1, 200)), correct, ticket_id, rng.choice(labels))
            if rng.random() < 0.7:
                resolve_at = when + timedelta(hours=rng.randrange(1, 90))
                later(resolve_at, move, ticket_id, "resolved")
                if rng.random() < 0.3:
                    later(resolve_at + timedelta(hours=rng.randrange(1, 30)), move, ticket_id, "in_progress")
                    later(resolve_at + timedelta(hours=rng.randrange(31, 60)), move, ticket_id, "resolved")
                elif rng.random() < 0.5:
                    later(resolve_at + timedelta(hours=rng.randrange(1, 30)), move, ticket_id, "closed")
        if _name == "create" and len(made) % 6 == 0:  # a scheduler tick now and then: escalations, breaches
            tick = when + timedelta(minutes=45)
            events.append(
                (
                    tick,
                    lambda t=tick: run_due_work(database, services, t, merchant_ids=[m.merchant_id]) and None,
                    "tick",
                )
            )


def load_raw(database: Database, merchant_id: str) -> dict[str, list[Any]]:
    with database.read_only() as session:
        return {
            name: list(session.exec(select(model).where(model.merchant_id == merchant_id)))
            for name, model in (
                ("tickets", Ticket),
                ("transitions", StageTransition),
                ("actions", ActionRequest),
                ("corrections", ClassificationCorrection),
                ("firings", EscalationFiring),
            )
        }


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1) + 0.5)]


def recount(raw: dict[str, list[Any]], granularity: str, split: str) -> dict[str, Any]:
    """The report, counted from the raw rows with no roll-up code but the histogram's binning."""
    tickets_by_id = {t.id: t for t in raw["tickets"]}

    def group(ticket_id: str) -> str:
        t = tickets_by_id[ticket_id]
        value = {
            "none": "",
            "team": t.team_id,
            "category": t.category,
            "priority": t.priority,
            "channel": t.channel,
        }
        return value[split] or ""

    def bucket(day: date) -> date:
        return day - timedelta(days=day.weekday()) if granularity == "week" else day

    def in_period(at: datetime | None) -> bool:
        return at is not None and START <= at.date() <= END

    days = [START + timedelta(days=i) for i in range((END - START).days + 1)]
    buckets = sorted({bucket(d) for d in days})
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for t in raw["tickets"]:
        g = group(t.id)
        if in_period(t.created_at):
            counts[("created", bucket(t.created_at.date()), g)] += 1
        if in_period(t.first_responded_at) and t.first_response_due_at:
            met = t.first_responded_at <= t.first_response_due_at
            counts[("fr_met" if met else "fr_missed", bucket(t.first_responded_at.date()), g)] += 1
        if in_period(t.resolved_at) and t.resolution_due_at:
            met = t.resolved_at <= t.resolution_due_at
            counts[("res_met" if met else "res_missed", bucket(t.resolved_at.date()), g)] += 1
        if in_period(t.sla_breached_at):
            counts[("breaches", bucket(t.sla_breached_at.date()), g)] += 1
    for tr in raw["transitions"]:
        closes = tr.to_stage in CLOSED_STAGES
        if tr.from_stage is not None and in_period(tr.at) and closes != (tr.from_stage in CLOSED_STAGES):
            counts[("closed" if closes else "reopened", bucket(tr.at.date()), group(tr.ticket_id))] += 1
    for f in raw["firings"]:
        if in_period(f.fired_at):
            counts[("escalations", bucket(f.fired_at.date()), group(f.ticket_id))] += 1

    # Backlog, independently: a ticket is open at the end of a day if it existed and its last stage by then
    # is open.
    def open_at(ticket_id: str, day: date) -> bool:
        moves = [tr for tr in raw["transitions"] if tr.ticket_id == ticket_id and tr.at.date() <= day]
        if not moves:
            return False
        last = max(moves, key=lambda tr: (tr.at, tr.id))
        return last.to_stage not in CLOSED_STAGES

    groups = sorted({group(t.id) for t in raw["tickets"]}) if split != "none" else [""]
    volume, sla = [], []
    for g in groups:
        for b in buckets:
            last_day = min(b + timedelta(days=6 if granularity == "week" else 0), END)
            backlog = sum(1 for t in raw["tickets"] if group(t.id) == g and open_at(t.id, last_day))
            volume.append(
                {
                    "bucket": b.isoformat(),
                    "group": g,
                    "created": counts[("created", b, g)],
                    "closed": counts[("closed", b, g)],
                    "reopened": counts[("reopened", b, g)],
                    "backlog": backlog,
                }
            )
            sla.append(
                {
                    "bucket": b.isoformat(),
                    "group": g,
                    "firstResponseMet": counts[("fr_met", b, g)],
                    "firstResponseMissed": counts[("fr_missed", b, g)],
                    "resolutionMet": counts[("res_met", b, g)],
                    "resolutionMissed": counts[("res_missed", b, g)],
                    "breaches": counts[("breaches", b, g)],
                    "escalations": counts[("escalations", b, g)],
                }
            )

    samples: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for tr in raw["transitions"]:
        if tr.from_stage is not None and tr.seconds_in_from_stage is not None and in_period(tr.at):
            samples[(None, group(tr.ticket_id), "stage", tr.from_stage, tr.to_stage, None)].append(
                tr.seconds_in_from_stage
            )
    trend_samples: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for t in raw["tickets"]:
        for metric, at in (("first_response", t.first_responded_at), ("resolution", t.resolved_at)):
            if in_period(at):
                seconds = (at - t.created_at).total_seconds()
                samples[(None, group(t.id), metric, None, None, None)].append(seconds)
                trend_samples[(bucket(at.date()).isoformat(), group(t.id), metric)].append(seconds)
    for a in raw["actions"]:
        if a.effect == "require_approval" and in_period(a.decided_at):
            samples[(None, group(a.ticket_id), "approval_wait", None, None, a.status)].append(
                (a.decided_at - a.created_at).total_seconds()
            )

    def summary(values: list[float]) -> dict[str, Any]:
        return {
            "count": len(values),
            "meanSeconds": pytest.approx(sum(values) / len(values), rel=1e-9, abs=1e-6),
            "p50Seconds": pytest.approx(bin_value(duration_bin(nearest_rank(values, 0.5))), rel=1e-12),
            "p90Seconds": pytest.approx(bin_value(duration_bin(nearest_rank(values, 0.9))), rel=1e-12),
        }

    durations = {k: summary(v) for k, v in samples.items()}
    trends = {k: summary(v) for k, v in trend_samples.items()}
    action_counts: dict[tuple[str, ...], int] = defaultdict(int)
    for a in raw["actions"]:
        if in_period(a.created_at):
            action_counts[(group(a.ticket_id), a.actor, a.type, a.effect, a.status)] += 1
    correction_counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for c in raw["corrections"]:
        if in_period(c.created_at) and c.category is not None:
            correction_counts[(group(c.ticket_id), c.old_category, c.category)] += 1
    return {
        "volume": volume,
        "sla": sla,
        "durations": durations,
        "trends": trends,
        "actions": dict(action_counts),
        "corrections": dict(correction_counts),
    }


@pytest.fixture(scope="module")
def history(database: Database, services: WorkflowServices) -> tuple[MerchantKeys, dict[str, list[Any]]]:
    """Seeded once per back-end for the module: two stores with the same ten days."""
    import secrets

    from workflow.tenancy.merchants import create_api_key, create_merchant

    stores = []
    for seed in (17, 18):
        slug = f"r-{secrets.token_hex(6)}"
        with database.unit_of_work() as session:
            merchant = create_merchant(session, name=slug, slug=slug)
            keys = MerchantKeys(merchant_id=merchant.id, slug=slug)
            for role in ("admin", "agent", "ai", "partner", "viewer"):
                issued = create_api_key(session, merchant_id=merchant.id, role=role, name=role)
                keys.keys[role], keys.key_ids[role] = issued.secret, issued.key.id
        seed_history(database, services, keys, seed=seed)  # the second: the same days at another store
        stores.append(keys)
    return stores[0], load_raw(database, stores[0].merchant_id)


def lower(name: str | None) -> str | None:
    """A GraphQL enum name (IN_PROGRESS) as the stored value the recount uses (in_progress)."""
    return None if name is None else name.lower()


@pytest.mark.parametrize(
    ("granularity", "split"),
    [("DAY", "NONE"), ("WEEK", "TEAM"), ("DAY", "CATEGORY"), ("WEEK", "PRIORITY"), ("DAY", "CHANNEL")],
)
async def test_report_equals_a_recount_of_the_raw_tables(
    api: Api, history: tuple[MerchantKeys, dict[str, list[Any]]], granularity: str, split: str
) -> None:
    m, raw = history
    variables = {"start": START.isoformat(), "end": END.isoformat(), "g": granularity, "s": split}
    got = (await api.ok(REPORT, variables, key=m.keys["viewer"]))["report"]
    want = recount(raw, granularity.lower(), split.lower())

    # The history is rich enough to mean something.
    assert sum(r["created"] for r in want["volume"]) > 30
    assert sum(r["closed"] for r in want["volume"]) > 10 and sum(r["reopened"] for r in want["volume"]) > 0
    assert {k[2] for k in want["durations"]} >= {"stage", "first_response", "resolution", "approval_wait"}
    assert {k[4] for k in want["actions"]} >= {
        "executed",
        "executing",
        "rejected",
        "denied",
    }  # approved external actions now wait executing
    assert (
        want["corrections"]
        and any(r["breaches"] for r in want["sla"])
        and any(r["escalations"] for r in want["sla"])
    )

    assert got["volume"] == want["volume"]
    got_sla = [{k: v for k, v in row.items() if k != "firstResponseAttainment"} for row in got["sla"]]
    assert got_sla == want["sla"]
    for row in got["sla"]:
        judged = row["firstResponseMet"] + row["firstResponseMissed"]
        assert row["firstResponseAttainment"] == (row["firstResponseMet"] / judged if judged else None)
    durations = {
        (d["bucket"], d["group"], d["metric"], lower(d["fromStage"]), lower(d["toStage"]), d["decision"]): {
            k: d[k] for k in ("count", "meanSeconds", "p50Seconds", "p90Seconds")
        }
        for d in got["durations"]
    }
    assert durations == want["durations"]
    trends = {
        (d["bucket"], d["group"], d["metric"]): {
            k: d[k] for k in ("count", "meanSeconds", "p50Seconds", "p90Seconds")
        }
        for d in got["trends"]
    }
    assert trends == want["trends"]
    assert {
        (a["group"], lower(a["actor"]), a["type"], lower(a["effect"]), a["status"]): a["count"]
        for a in got["actions"]
    } == want["actions"]
    assert {(c["group"], c["fromCategory"], c["toCategory"]): c["count"] for c in got["corrections"]} == want[
        "corrections"
    ]


async def test_report_of_an_empty_store_and_bad_periods(api: Api, merchant: MerchantKeys) -> None:
    variables = {"start": START.isoformat(), "end": END.isoformat(), "g": "DAY", "s": "NONE"}
    empty = (await api.ok(REPORT, variables, key=merchant.keys["viewer"]))["report"]
    assert [r["created"] for r in empty["volume"]] == [0] * 7 and empty["durations"] == []
    for start, end, message in (
        ("2026-11-10", "2026-11-01", "ends before"),
        ("2025-01-01", "2026-11-01", "at most"),
    ):
        body = await api.raw(REPORT, {**variables, "start": start, "end": end}, key=merchant.keys["viewer"])
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert message in body["errors"][0]["message"]


def test_rebuild_gives_the_maintained_roll_ups(
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    history: tuple[MerchantKeys, dict[str, list[Any]]],
) -> None:
    """Recounting from scratch (``bookbag db rebuild-reports``) lands on exactly what the units of work kept."""
    from sqlalchemy import delete

    from bookbag.cli import main
    from storage.tables import ReportCount, TicketReportState
    from workflow.reports.rollups import rebuild

    m, _ = history

    def snapshot() -> set[tuple[Any, ...]]:
        with database.read_only() as session:
            rows = session.exec(select(ReportCount).where(ReportCount.merchant_id == m.merchant_id))
            return {
                (r.dim, r.day, r.metric, r.key, r.value, r.bin, r.n, round(r.total, 6)) for r in rows if r.n
            }

    kept = snapshot()
    with database.unit_of_work() as session:
        session.execute(delete(ReportCount).where(ReportCount.merchant_id == m.merchant_id))
        session.execute(delete(TicketReportState).where(TicketReportState.merchant_id == m.merchant_id))
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    assert main(["db", "rebuild-reports", "--merchant", m.slug]) == 0
    assert snapshot() == kept
    rebuild(database, m.merchant_id)  # idempotent
    assert snapshot() == kept
