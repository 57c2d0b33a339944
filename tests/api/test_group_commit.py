"""createTicket's group commit, through HTTP on SQLite and PostgreSQL: requests sent together are written
in one transaction, yet each gets exactly what it would have got alone (its own refusal, idempotency,
assignment spread, audit trail), and a group that fails as a whole is rerun one request at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select
from starlette.applications import Starlette

import classifier
from resolvers.tickets import ingest_group
from runtime.context import ApiLimits, ApiRuntime
from storage.db import Database
from storage.tables import Agent, AuditEvent, IdempotencyRecord, StageTransition, Team, Ticket
from tests.api.conftest import CREATE, Api
from tests.conftest import REPO_ROOT, MerchantKeys, assert_open_counts_match, count_rows
from workflow import idempotency
from workflow.errors import ErrorCode
from workflow.live.bus import TicketEvent
from workflow.rulesets.versions import publish_ruleset
from workflow.services import WorkflowServices
from workflow.tenancy import agents
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.group_commit import GroupCommit, GroupCommitStats
from workflow.tickets.ingest import TicketInput, create_tickets

SUBJECTS = [
    ("Where is my order?", "Order #{n} has not arrived, tracking has not moved for a week."),
    ("Refund request", "The mug in order #{n} arrived broken, I want my money back."),
    ("Change my address", "Please ship order #{n} to my new address before it leaves."),
    ("Cancel order", "I ordered #{n} by mistake, please cancel it."),
]


def ticket_input(n: int) -> dict[str, Any]:
    subject, body = SUBJECTS[n % len(SUBJECTS)]
    return {"subject": subject, "body": body.format(n=1000 + n)}


def group_commit(app: Starlette) -> GroupCommit:
    found: GroupCommit = app.state.bookbag.runtime._group_commits["createTicket"]
    return found


async def create_together(api: Api, key: str, variables: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every createTicket at once (one event loop: all are queued before the first group is taken)."""
    bodies = await asyncio.gather(*(api.raw(CREATE, v, key=key) for v in variables))
    return list(bodies)


TEAMS = {  # team: (agents, skills, capacity)
    "senior": (3, [], 2),  # VIP tickets, least loaded: room for six
    "support": (3, ["shipping"], 10),  # round robin
    "billing": (2, ["billing"], 10),  # round robin
}


def with_teams(database: Database, merchant: MerchantKeys) -> None:
    admin = Principal(merchant_id=merchant.merchant_id, role=Role.ADMIN)
    with database.unit_of_work() as session:
        for team, (size, skills, capacity) in TEAMS.items():
            agents.create_team(session, admin, name=team)
            for n in range(size):
                agents.create_agent(
                    session,
                    admin,
                    name=f"{team} {n}",
                    email=f"{team}.{n}@shop.test",
                    teams=[team],
                    skills=skills,
                    capacity=capacity,
                )


def ingest_record(database: Database, merchant_id: str) -> list[tuple[Any, ...]]:
    """Per ticket, everything ingest decided and wrote, with this merchant's ids replaced by names: the
    ticket's fields, its SLA due times relative to its creation, its audit entries (kind, actor, before and
    after, routing facts and decision) and its stage transitions, in order."""
    with database.read_only() as session:
        names = {a.id: a.email for a in session.exec(select(Agent).where(Agent.merchant_id == merchant_id))}
        names.update(
            {t.id: t.name for t in session.exec(select(Team).where(Team.merchant_id == merchant_id))}
        )

        def named(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: named(v) for k, v in value.items() if k not in {"ticket_id", "now", "created_at"}}
            if isinstance(value, list):
                return [named(v) for v in value]
            return names.get(value, value) if isinstance(value, str) else value

        tickets = session.exec(select(Ticket).where(Ticket.merchant_id == merchant_id)).all()
        names.update({t.id: f"ticket {t.body}" for t in tickets})
        out = []
        for t in tickets:
            audits = session.exec(
                select(AuditEvent).where(AuditEvent.ticket_id == t.id).order_by(col(AuditEvent.id))
            ).all()
            moves = session.exec(
                select(StageTransition)
                .where(StageTransition.ticket_id == t.id)
                .order_by(col(StageTransition.id))
            ).all()
            out.append(
                (
                    t.body,
                    names.get(t.assignee_id or ""),
                    names.get(t.team_id or ""),
                    t.stage,
                    t.priority,
                    t.category,
                    t.needs_human,
                    t.tags,
                    t.routing_rule_id,
                    t.version,
                    t.first_response_due_at - t.created_at if t.first_response_due_at else None,
                    t.resolution_due_at - t.created_at if t.resolution_due_at else None,
                    [
                        (a.kind, a.actor, named(a.before), named(a.after), named(a.facts), named(a.decision))
                        for a in audits
                    ],
                    [(m.from_stage, m.to_stage, m.actor) for m in moves],
                )
            )
        return sorted(out, key=lambda row: row[0])


async def test_requests_sent_together_are_written_together_as_if_alone(
    api: Api,
    app: Starlette,
    database: Database,
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    together, alone = make_merchant(), make_merchant()
    with_teams(database, together)
    with_teams(database, alone)
    variables = [{"input": ticket_input(n)} for n in range(12)]
    variables += [{"input": {**ticket_input(n), "customer": {"vip": True}}} for n in range(12, 20)]

    await api.ok("{ me { role } }", key=together.keys["partner"])  # the key is cached: requests run alike
    bodies = await create_together(api, together.keys["partner"], variables)
    stats = group_commit(app).stats
    # The first request may find the database idle and go alone; the rest queue behind it and go together.
    assert stats.requests == 20 and stats.largest >= 10 and stats.rerun_alone == 0
    for body, sent in zip(bodies, variables, strict=True):
        payload = body["data"]["createTicket"]
        assert payload["errors"] == [] and payload["replayed"] is False
        assert payload["ticket"]["subject"] == sent["input"]["subject"]
    assert len({b["data"]["createTicket"]["ticket"]["id"] for b in bodies}) == 20

    for v in variables:  # the same tickets, one request at a time, for a merchant set up the same way
        body = await api.raw(CREATE, v, key=alone.keys["partner"])
        assert body["data"]["createTicket"]["errors"] == []
    assert group_commit(app).stats.requests == 40

    grouped = ingest_record(database, together.merchant_id)
    single = ingest_record(database, alone.merchant_id)
    assert grouped == single
    assert_open_counts_match(database, together.merchant_id)
    assert_open_counts_match(database, alone.merchant_id)
    load = Counter(row[1] for row in grouped)
    # VIPs: least loaded within capacity (2 each), the last two wait in the team queue; round robin turns.
    assert [load[f"senior.{n}@shop.test"] for n in range(3)] == [2, 2, 2] and load[None] >= 2
    assert sum(1 for n in range(3) if load[f"support.{n}@shop.test"]) >= 2
    assert sum(1 for n in range(2) if load[f"billing.{n}@shop.test"]) == 2


# The rest drive GroupCommit.submit directly: requests gathered in one event loop are all queued before the
# first group is taken, so which requests share a group is certain.


def runtime_for(database: Database, services: WorkflowServices) -> ApiRuntime:
    return ApiRuntime(db=database, services=services)


def partner(merchant: MerchantKeys) -> Principal:
    return Principal(merchant_id=merchant.merchant_id, role=Role.PARTNER)


async def submit_together(
    group: GroupCommit, principal: Principal, requests: Sequence[tuple[TicketInput, str | None]]
) -> list[Any]:
    return list(
        await asyncio.gather(
            *(
                group.submit(principal, payload=asdict(data), idempotency_key=key, service_input=data)
                for data, key in requests
            ),
            return_exceptions=True,
        )
    )


def new(n: int, **fields: Any) -> TicketInput:
    return TicketInput(**{**ticket_input(n), **fields})


async def test_a_refused_input_fails_alone_and_the_rest_of_its_group_is_written(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    outcomes = await submit_together(
        group,
        partner(merchant),
        [
            (new(0), None),
            (TicketInput(subject="  ", body=""), None),
            (new(1, customer_email="not-an-email"), None),
            (new(2), None),
        ],
    )
    assert group.stats == GroupCommitStats(groups=1, requests=4, largest=4, rerun_alone=0)
    (ok_first, _, _), (_, empty, _), (_, bad_email, _), (ok_last, _, _) = outcomes
    assert ok_first["ticket"]["subject"] == "Where is my order?" and ok_last["ticket"]["id"]
    assert empty.code is ErrorCode.INVALID_INPUT and bad_email.field == "customerEmail"
    assert count_rows(database, Ticket, merchant.merchant_id) == 2
    assert count_rows(database, AuditEvent, merchant.merchant_id) == 2 * 3  # created, routed, triaged


async def test_one_key_twice_in_a_group_replays_and_a_changed_input_is_a_mismatch(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    outcomes = await submit_together(
        group,
        partner(merchant),
        [(new(0), "order-1000"), (new(0), "order-1000"), (new(1), "order-1000"), (new(2), "order-1002")],
    )
    (first, _, replayed_first), (again, _, replayed_again), (_, mismatch, _), (third, _, _) = outcomes
    assert replayed_first is False and replayed_again is True and again == first
    assert mismatch.code is ErrorCode.IDEMPOTENCY_MISMATCH
    assert third["ticket"]["id"] != first["ticket"]["id"]
    # A key appears once per group: each repeat waited for a later group, where it was looked up.
    assert group.stats == GroupCommitStats(groups=3, requests=4, largest=2, rerun_alone=0)
    assert count_rows(database, Ticket, merchant.merchant_id) == 2
    assert count_rows(database, IdempotencyRecord, merchant.merchant_id) == 2


class FailsOn:
    """The shipped classifier, except that it breaks (as a bug would) on one subject."""

    def __init__(self, model: classifier.Classifier, subject: str) -> None:
        self.model, self.subject = model, subject

    def predict_batch(self, tickets: Sequence[classifier.TicketInput]) -> list[classifier.Prediction]:
        if any(t.subject == self.subject for t in tickets):
            raise RuntimeError("classifier exploded")
        return self.model.predict_batch(tickets)


async def test_a_group_that_fails_as_a_whole_is_rerun_one_request_at_a_time(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    breaking = WorkflowServices(
        policy=services.policy,
        classifier=FailsOn(services.classifier, "boom"),  # type: ignore[arg-type]
    )
    published: list[TicketEvent] = []
    breaking.bus.add_listener(published.append)
    group = runtime_for(database, breaking).group_commit("createTicket", ingest_group)
    outcomes = await submit_together(
        group,
        partner(merchant),
        [(new(0), None), (TicketInput(subject="boom", body="breaks the classifier"), None), (new(1), "k-1")],
    )
    assert group.stats == GroupCommitStats(groups=1, requests=3, largest=3, rerun_alone=1)
    # Events only for what was committed: created + triaged for each of the two tickets, none twice.
    assert sorted((e.ticket_id, e.kind) for e in published) == sorted(
        (o[0]["ticket"]["id"], kind)
        for o in (outcomes[0], outcomes[2])
        for kind in ("created", "transitioned")
    )
    ok_first, broken, ok_last = outcomes
    assert isinstance(broken, RuntimeError)  # raised to that request alone (the API masks it)
    assert ok_first[1] is None and ok_last[1] is None
    assert count_rows(database, Ticket, merchant.merchant_id) == 2  # nothing of the failed group was kept
    assert count_rows(database, AuditEvent, merchant.merchant_id) == 2 * 3
    assert count_rows(database, IdempotencyRecord, merchant.merchant_id) == 1


async def test_a_key_stored_by_another_request_meanwhile_replays_its_response(
    database: Database, services: WorkflowServices, merchant: MerchantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    [(first, _, _)] = await submit_together(group, partner(merchant), [(new(0), "race")])
    # The next lookup misses the stored key, as when another process commits it after this group looked.
    real = idempotency.find_records
    misses = iter([True])

    def find_records(*args: Any, **kwargs: Any) -> Any:
        return {} if next(misses, False) else real(*args, **kwargs)

    monkeypatch.setattr("workflow.idempotency.find_records", find_records)
    racing, other = await submit_together(group, partner(merchant), [(new(0), "race"), (new(3), None)])
    assert racing == (first, None, True)
    assert other[1] is None and other[0]["ticket"]["id"] != first["ticket"]["id"]
    assert group.stats.rerun_alone == 1  # the group hit the key's primary key and was rerun
    assert count_rows(database, Ticket, merchant.merchant_id) == 2


async def test_one_group_can_hold_several_merchants_each_routed_by_its_own_teams(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    first, second = make_merchant(), make_merchant()
    with_teams(database, first)
    with_teams(database, second)
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    submits = [
        group.submit(partner(m), payload=asdict(new(n)), idempotency_key="same-key", service_input=new(n))
        for n, m in enumerate([first, second])
    ]
    outcomes = await asyncio.gather(*submits)
    assert group.stats == GroupCommitStats(groups=1, requests=2, largest=2, rerun_alone=0)
    for (snapshot, error, replayed), merchant in zip(outcomes, [first, second], strict=True):
        assert error is None and snapshot is not None and replayed is False
        with database.read_only() as session:
            ticket = session.get(Ticket, snapshot["ticket"]["id"])
            assert ticket is not None and ticket.merchant_id == merchant.merchant_id
            team = session.get(Team, ticket.team_id)
            agent = session.get(Agent, ticket.assignee_id)
            assert team is not None and team.merchant_id == merchant.merchant_id
            assert agent is not None and agent.merchant_id == merchant.merchant_id
        assert count_rows(database, IdempotencyRecord, merchant.merchant_id) == 1


async def test_max_group_commit_bounds_the_group(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    for limit, groups in ((1, 5), (2, 3)):  # BOOKBAG_MAX_GROUP_COMMIT=1 writes each request alone
        runtime = ApiRuntime(db=database, services=services, limits=ApiLimits(max_group_commit=limit))
        group = runtime.group_commit("createTicket", ingest_group)
        outcomes = await submit_together(group, partner(merchant), [(new(n), None) for n in range(5)])
        assert all(error is None for _, error, _ in outcomes)
        assert group.stats == GroupCommitStats(groups=groups, requests=5, largest=limit, rerun_alone=0)


async def test_a_request_whose_client_went_away_before_its_turn_writes_nothing(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    data = [new(0), new(1)]
    stays, leaves = (
        asyncio.create_task(
            group.submit(partner(merchant), payload=asdict(d), idempotency_key=None, service_input=d)
        )
        for d in data
    )
    await asyncio.sleep(0)  # both are queued; the first group is not taken yet
    leaves.cancel()
    snapshot, error, _ = await stays
    assert error is None and snapshot is not None
    with pytest.raises(asyncio.CancelledError):
        await leaves
    assert group.stats == GroupCommitStats(groups=1, requests=1, largest=1, rerun_alone=0)
    assert count_rows(database, Ticket, merchant.merchant_id) == 1


async def test_a_refusal_while_routing_fails_alone_without_rerunning_the_group(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    """The fashion store's ruleset tags VIP tickets; a VIP ticket already at the tag limit is refused by
    routing, after classification, inside the group."""
    with database.unit_of_work() as session:
        admin = Principal(merchant_id=merchant.merchant_id, role=Role.ADMIN)
        source = (REPO_ROOT / "rulesets" / "fashion_store.yaml").read_text()
        publish_ruleset(session, services, admin, source=source, message="tags VIPs")
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    full = new(1, customer_vip=True, tags=[f"t{n}" for n in range(50)])
    outcomes = await submit_together(group, partner(merchant), [(new(0), None), (full, "k"), (new(2), None)])
    (first, _, _), (_, refused, _), (last, _, _) = outcomes
    assert refused.code is ErrorCode.INVALID_INPUT and refused.field == "tags"
    assert first["ticket"]["id"] and last["ticket"]["id"]
    assert group.stats == GroupCommitStats(groups=1, requests=3, largest=3, rerun_alone=0)
    assert count_rows(database, Ticket, merchant.merchant_id) == 2
    assert count_rows(database, IdempotencyRecord, merchant.merchant_id) == 0  # a refusal is not stored


def test_concurrent_groups_of_one_merchant_do_not_deadlock(
    database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    """Two writers ingest groups for one merchant whose tickets go round-robin to two teams, in opposite
    orders, so each group updates both teams' cursors. The writers are made to meet right after their first
    team update: without the merchant's queue row taken first, on PostgreSQL each would then hold one team
    row and wait for the other (a deadlock); with it, the second writer waits before touching any team."""
    import threading

    from sqlalchemy import event

    admin = Principal(merchant_id=merchant.merchant_id, role=Role.ADMIN)
    with database.unit_of_work() as session:
        for team, skill in (("support", "shipping"), ("billing", "billing")):
            agents.create_team(session, admin, name=team)
            for n in range(3):  # 8 tickets a group: each cursor ends elsewhere, its row is updated
                agents.create_agent(
                    session,
                    admin,
                    name=f"{team} {n}",
                    email=f"{team}.{n}@x.test",
                    teams=[team],
                    skills=[skill],
                    capacity=1000,
                )
    shipping = TicketInput(subject="Where is my order?", body="Tracking has not moved for a week.")
    refund = TicketInput(subject="Refund request", body="The mug arrived broken, I want my money back.")
    meet = threading.Barrier(2)
    writers = {"writer-1", "writer-2"}
    errors: list[BaseException] = []

    def after_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        first_update = statement.startswith("UPDATE teams") and not conn.info.get("met")
        if threading.current_thread().name in writers and first_update:
            conn.info["met"] = True
            try:
                meet.wait(timeout=0.2)  # alone (the other writer is waiting for the queue row): go on
            except threading.BrokenBarrierError:
                meet.reset()

    def writer(first: TicketInput, then: TicketInput) -> None:
        try:
            for _ in range(3):
                with database.unit_of_work() as session:
                    session.connection().info.pop("met", None)
                    group = [(partner(merchant), t) for t in [first] * 8 + [then] * 8]
                    results = create_tickets(session, services, group)
                assert not any(isinstance(r, Exception) for r in results)
        except BaseException as exc:
            errors.append(exc)

    event.listen(database.engine, "after_cursor_execute", after_execute)
    try:
        threads = [
            threading.Thread(target=writer, args=order, name=name)
            for name, order in (("writer-1", (shipping, refund)), ("writer-2", (refund, shipping)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(database.engine, "after_cursor_execute", after_execute)
    assert errors == []
    with database.read_only() as session:
        assigned = session.exec(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.merchant_id == merchant.merchant_id, col(Ticket.assignee_id).is_not(None))
        ).one()
    assert assigned == 2 * 3 * 16
    assert_open_counts_match(database, merchant.merchant_id)


async def test_waiting_requests_are_never_left_hanging(
    database: Database, services: WorkflowServices, merchant: MerchantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutdown cancels the group's drainer: every waiting request is cancelled. A bug in the drainer:
    every waiting request fails with it. Either way nothing is written and the next request works."""
    group = runtime_for(database, services).group_commit("createTicket", ingest_group)
    waiting = [
        asyncio.create_task(
            group.submit(partner(merchant), payload={}, idempotency_key=None, service_input=new(n))
        )
        for n in range(3)
    ]
    await asyncio.sleep(0)  # all queued, the drainer created but not yet run
    assert group._drainer is not None
    group._drainer.cancel()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task

    def broken_take() -> list[Any]:
        raise RuntimeError("bug in the drainer")

    monkeypatch.setattr(group, "_take", broken_take)
    outcomes = await submit_together(group, partner(merchant), [(new(3), None), (new(4), None)])
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert count_rows(database, Ticket, merchant.merchant_id) == 0

    monkeypatch.undo()
    [(snapshot, error, _)] = await submit_together(group, partner(merchant), [(new(5), None)])
    assert error is None and snapshot is not None
    assert count_rows(database, Ticket, merchant.merchant_id) == 1
