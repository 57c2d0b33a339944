"""``bookbag rules backtest --from-db``: a draft replayed against a merchant's recorded decisions (the audit
log's facts) and its active version, on both back-ends; ``--since`` bounds the window; the report's
``by_action`` and ``effect_transitions`` agree."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from bookbag.cli import main
from policy import default_ruleset_path
from storage.db import Database
from storage.tables import AuditEvent, utcnow
from tests.conftest import MerchantKeys
from workflow import actions
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.ingest import TicketInput, create_ticket


def record_decisions(database: Database, services: WorkflowServices, m: MerchantKeys) -> int:
    """AI refunds of several amounts and a few other actions on fresh tickets; returns how many decisions."""
    partner = Principal(merchant_id=m.merchant_id, role=Role.PARTNER, key_id=m.key_ids["partner"])
    ai = Principal(merchant_id=m.merchant_id, role=Role.AI, key_id=m.key_ids["ai"])
    decided = 0
    for i, (type_, amount) in enumerate(
        [
            ("refund", 5.0),
            ("refund", 20.0),
            ("refund", 40.0),
            ("refund", 80.0),
            ("note", None),
            ("cancel_order", None),
            ("close", None),
        ]
        * 2
    ):
        with database.unit_of_work() as session:
            ticket = create_ticket(
                session,
                services,
                partner,
                TicketInput(subject=f"Refund {i}", body="The mug broke, refund me."),
            ).ticket
            actions.request_action(session, services, ai, ticket_id=ticket.id, type=type_, amount=amount)
            decided += 1
    return decided


def run_backtest(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["rules", "backtest", *args]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_backtest_from_the_database(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    database: Database,
    services: WorkflowServices,
    make_merchant: Any,
) -> None:
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    m, other = make_merchant(), make_merchant()
    decided = record_decisions(database, services, m)
    record_decisions(database, services, other)  # never replayed for m
    default = str(default_ruleset_path())
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        Path(default).read_text().replace("{fact: action.amount, lte: 50}", "{fact: action.amount, lte: 10}")
    )

    same = run_backtest(capsys, default, "--from-db", "--merchant", m.slug, "--since", "30d")
    assert same["total"] == decided and same["changed"] == 0 and same["effect_transitions"] == {}

    report = run_backtest(capsys, str(draft), "--from-db", "--merchant", m.slug)
    assert report["total"] == decided
    by_action_flips: Counter[str] = Counter()
    for counts in report["by_action"].values():
        for key, n in counts.items():
            before, after = key.split("->")
            if before != after:
                by_action_flips[key] += n
    assert dict(by_action_flips) == report["effect_transitions"]
    assert sum(sum(c.values()) for c in report["by_action"].values()) == report["total"]
    assert report["changed"] == sum(report["effect_transitions"].values()) + sum(
        report["same_effect_other_rules"].values()
    )

    # Decisions older than the window are left out.
    with database.unit_of_work() as session:
        session.execute(
            update(AuditEvent)
            .where(col(AuditEvent.merchant_id) == m.merchant_id, col(AuditEvent.kind) == "action.decided")
            .values(created_at=utcnow() - timedelta(days=40))
        )
    assert run_backtest(capsys, str(draft), "--from-db", "--merchant", m.slug, "--since", "30d")["total"] == 0
    assert (
        run_backtest(capsys, str(draft), "--from-db", "--merchant", m.slug, "--since", "41d")["total"]
        == decided
    )


def test_backtest_from_the_database_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    default = str(default_ruleset_path())
    for args, message in (
        (["--from-db"], "needs --merchant"),
        (["--from-db", "--merchant", "no-such-store"], "merchant"),
        (["--from-db", "--merchant", "x", "--since", "soon"], "--since"),
        (["--from-db", "--merchant", "x", "--cases", "c.jsonl"], "leave out"),
        ([], "--from-db"),
    ):
        capsys.readouterr()
        assert main(["rules", "backtest", default, *args]) == 2, args
        assert message in capsys.readouterr().err, args
