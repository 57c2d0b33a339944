"""The committed ``schema/schema.graphql`` must match the code (regenerate with ``bookbag schema export``)."""

from __future__ import annotations

from bookbag.cli.schema_cmd import default_path, schema_sdl


def test_committed_schema_matches_code() -> None:
    path = default_path()
    assert path.exists(), "schema/schema.graphql is missing: run `bookbag schema export`"
    assert path.read_text(encoding="utf-8") == schema_sdl(), (
        "schema/schema.graphql differs from the code: run `bookbag schema export` and commit the result"
    )


def test_schema_names_every_operation_of_the_contract() -> None:
    sdl = schema_sdl()
    for name in (
        "me:",
        "ticket(",
        "tickets(",
        "queue:",
        "ruleset:",
        "rulesetVersions:",
        "auditLog(",
        "classifierInfo:",
        "createTicket(",
        "addMessage(",
        "assignTicket(",
        "updateTicket(",
        "transitionTicket(",
        "correctClassification(",
        "requestAction(",
        "approveAction(",
        "rejectAction(",
        "validateRuleset(",
        "publishRuleset(",
        "activateRulesetVersion(",
        "simulate(",
        "backtest(",
    ):
        assert f"  {name}" in sdl, name
