"""The `ticket.language` fact and the cleaned `ticket.body` fact through real ingest (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from storage.db import Database
from storage.tables import Ticket
from tests.conftest import MerchantKeys
from tests.workflow.helpers import STRICT_RULESET, ingest, publish
from workflow.services import WorkflowServices
from workflow.tickets.facts import ticket_facts

LANGUAGE_RULES = STRICT_RULESET.replace(
    "routing:\n",
    "routing:\n"
    "  - id: german-desk\n"
    "    when: {fact: ticket.language, eq: de}\n"
    "    set: {tags: [lang-de]}\n"
    "  - id: mentions-refund\n"
    '    when: {fact: ticket.body, matches: "(?i)refund"}\n'
    "    set: {tags: [refund-words]}\n",
    1,
)

GERMAN_OUTLOOK_REPLY = """Guten Tag,

bitte stornieren Sie meine Bestellung 40112, ich habe mich im Modell vertan.

Viele Grüße
Anja Petersen

Von: Nordlicht Shop <service@nordlicht.example>
Gesendet: Dienstag, 24. November 2026 09:10
An: Anja Petersen
Betreff: Ihre Bestellung 40112

Your refund has been processed."""

ENGLISH_QUOTED_REFUND = """My parcel never arrived, can you check with the courier?

On Mon, 23 Nov 2026 at 10:00, Shop <help@shop.example> wrote:
> We have issued a refund for your previous order."""


def test_language_is_detected_once_stored_and_routed_on(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(database, services, m, LANGUAGE_RULES)
    german = ingest(database, services, m, subject="Stornierung", body=GERMAN_OUTLOOK_REPLY)
    english = ingest(database, services, m, subject="Parcel", body=ENGLISH_QUOTED_REFUND)
    with database.read_only() as session:
        stored_de = session.get(Ticket, german.id)
        stored_en = session.get(Ticket, english.id)
        assert stored_de is not None and stored_en is not None
        assert stored_de.language == "de" and stored_en.language == "en"
        # The raw body is kept as it arrived; the rules read the cleaned one.
        assert stored_de.body == GERMAN_OUTLOOK_REPLY
        assert stored_de.routing_rule_id == "german-desk" and "lang-de" in stored_de.tags
        # "refund" appears only in the quoted history of both tickets: no rule sees it.
        assert "refund-words" not in stored_en.tags
        assert stored_en.routing_rule_id is None
        facts = ticket_facts(stored_de, stored_de.created_at)["ticket"]
        assert facts["language"] == "de"
        assert "stornieren" in facts["body"] and "Your refund" not in facts["body"]
        assert "Anja Petersen" not in facts["body"]


def test_a_body_too_short_to_tell_has_no_language_fact(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = ingest(database, services, m, subject="", body="ok #4411")
    assert ticket.language is None
    assert "language" not in ticket_facts(ticket, ticket.created_at)["ticket"]
