"""`bookbag models` as an operator runs it (real processes, a real SQLite file): train a merchant's model from
its corrections with progress on stderr, the gate's refusal as a one-line error, promotion under the margins
in force, the listing, rollback back to the shipped model."""

from __future__ import annotations

from pathlib import Path

import classifier
from policy import PolicyEngine
from storage.db import Database
from tests.bookbag.test_cli import assert_one_line_error, run
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import get_merchant_by_slug
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.corrections import correct_classification
from workflow.tickets.ingest import TicketInput, create_ticket

SMALL = {
    "BOOKBAG_LEARNING_SEED_ROWS": "300",
    "BOOKBAG_LEARNING_SEED_HOLDOUT_ROWS": "200",
    "BOOKBAG_LEARNING_MAX_ROUNDS": "10",
}
LENIENT = {
    "BOOKBAG_LEARNING_GATE_F1_MARGIN": "1",
    "BOOKBAG_LEARNING_GATE_ACCURACY_MARGIN": "1",
    "BOOKBAG_LEARNING_GATE_ECE_MARGIN": "1",
}


def corrected_tickets(data_dir: Path, slug: str, n: int) -> None:
    database = Database.from_url(f"sqlite:///{data_dir / 'bookbag.sqlite3'}")
    services = WorkflowServices(
        policy=PolicyEngine(), classifier=classifier.Classifier.load(classifier.default_model_dir())
    )
    try:
        with database.read_only() as session:
            merchant_id = get_merchant_by_slug(session, slug).id
        for i in range(n):
            body = f"Please send the zorblax slip for parcel {3000 + i}; my accountant needs the zorblax paperwork."
            with database.unit_of_work() as session:
                partner = Principal(merchant_id=merchant_id, role=Role.PARTNER)
                ticket = create_ticket(
                    session, services, partner, TicketInput(subject=f"zorblax {i}", body=body)
                )
                agent = Principal(merchant_id=merchant_id, role=Role.AGENT)
                correct_classification(
                    session, services, agent, ticket_id=ticket.ticket.id, category="invoice", priority="low"
                )
    finally:
        database.dispose()


def test_train_refuse_promote_list_and_roll_back(tmp_path: Path) -> None:
    assert run(["merchants", "create", "Acme", "--slug", "acme"], tmp_path).returncode == 0
    assert_one_line_error(
        run(["models", "train", "--merchant", "acme"], tmp_path, **SMALL), "no corrected tickets"
    )
    corrected_tickets(tmp_path, "acme", 8)

    trained = run(["models", "train", "--merchant", "acme"], tmp_path, **SMALL)
    assert trained.returncode == 0, trained.stderr
    assert "comparing with the serving model" in trained.stderr  # progress
    assert trained.stdout.startswith("#1 ready merchant-v1-")
    assert (
        "merchant hold-out (2 tickets)" in trained.stdout and "seed hold-out (200 tickets)" in trained.stdout
    )
    assert "gate: refuses" in trained.stdout

    assert_one_line_error(
        run(["models", "promote", "--merchant", "acme", "--number", "1"], tmp_path), "MODEL_GATE_FAILED"
    )
    assert_one_line_error(
        run(["models", "promote", "--merchant", "acme", "--number", "7"], tmp_path), "no model #7"
    )
    promoted = run(["models", "promote", "--merchant", "acme", "--number", "1"], tmp_path, **LENIENT)
    assert promoted.returncode == 0 and "is active" in promoted.stdout, promoted.stderr
    listed = run(["models", "list", "--merchant", "acme"], tmp_path)
    assert listed.stdout.startswith("active: merchant-v1-") and "#1 active" in listed.stdout

    rolled = run(["models", "rollback", "--merchant", "acme"], tmp_path)
    assert rolled.returncode == 0 and "model #1 rolled back; active: default-" in rolled.stdout, rolled.stderr
    assert_one_line_error(run(["models", "rollback", "--merchant", "acme"], tmp_path), "CONFLICT")
    assert_one_line_error(run(["models", "list", "--merchant", "nobody"], tmp_path), "not found")
