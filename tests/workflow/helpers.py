"""Small helpers shared by the workflow tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage.db import Database
from storage.tables import Ticket
from tests.conftest import MerchantKeys
from workflow.rulesets.versions import publish_ruleset
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.ingest import TicketInput, create_ticket

STRICT_RULESET = (Path(__file__).parent / "data" / "strict.yaml").read_text()


def principal(m: MerchantKeys, role: str = "agent") -> Principal:
    return Principal(merchant_id=m.merchant_id, role=Role(role), key_id=m.key_ids.get(role))


def ingest(database: Database, services: WorkflowServices, m: MerchantKeys, **fields: Any) -> Ticket:
    data = TicketInput(
        **{"subject": "Where is my order?", "body": "Tracking has not moved for a week.", **fields}
    )
    with database.unit_of_work() as session:
        return create_ticket(session, services, principal(m, "partner"), data).ticket


def publish(
    database: Database, services: WorkflowServices, m: MerchantKeys, source: str = STRICT_RULESET
) -> int:
    with database.unit_of_work() as session:
        return publish_ruleset(
            session, services, principal(m, "admin"), source=source, message="test"
        ).version
