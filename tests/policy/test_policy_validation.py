"""Validation: every problem at once, stable codes, YAML positions and paths; lint warnings."""

from __future__ import annotations

import policy

BROKEN = """\
ruleset: broken
stages: [new, triaged]
transitions: {new: [triaged, nowhere]}
permissions:
  - id: a
    actors: [robot]
    actions: [refund]
    effect: allow
    colour: blue
  - id: a
    when:
      all:
        - {fact: action.amount, lte: 50}
        - {fact: ticket.body, matches: "(unclosed"}
        - {fact: ticket.nope, eq: 1}
        - {fact: action.amount, approx: 3}
    effect: maybe
escalations:
  - {id: e, after: soon, then: {transition: triaged}}
"""


def test_every_problem_reported_with_code_line_and_path() -> None:
    report = policy.validate_source(BROKEN, "broken.yaml")
    assert not report.ok
    got = {(p.code, p.line, p.path) for p in report.problems}
    assert ("E_UNKNOWN_STAGE", 3, "transitions.new[1]") in got
    assert ("E_UNKNOWN_ACTOR", 6, "permissions[0].actors[0]") in got
    assert ("E_UNKNOWN_KEY", 9, "permissions[0].colour") in got
    assert ("E_DUPLICATE_ID", 10, "permissions[1].id") in got
    assert ("E_BAD_REGEX", 14, "permissions[1].when.all[1].matches") in got
    assert ("E_UNKNOWN_FACT", 15, "permissions[1].when.all[2].fact") in got
    assert ("E_UNKNOWN_OP", 16, "permissions[1].when.all[3].approx") in got
    assert ("E_UNKNOWN_EFFECT", 17, "permissions[1].effect") in got
    assert ("E_BAD_DURATION", 19, "escalations[0].after") in got
    line = str(next(p for p in report.problems if p.code == "E_BAD_REGEX"))
    assert line.startswith("broken.yaml:14:") and " E_BAD_REGEX " in line


def test_syntax_error_has_position() -> None:
    report = policy.validate_source("ruleset: x\nstages: [a, b\n", "bad.yaml")
    assert [p.code for p in report.problems] == ["E_SYNTAX"]
    assert report.problems[0].line >= 2


def test_load_ruleset_raises_with_report() -> None:
    try:
        policy.load_ruleset(BROKEN)
    except policy.RulesetInvalid as exc:
        assert len(exc.report.problems) >= 9
    else:
        raise AssertionError("expected RulesetInvalid")


def test_engine_limit_is_a_validation_error() -> None:
    leaves = "\n".join(f"          - {{fact: customer.f{i}, eq: {i}}}" for i in range(300))
    source = f"ruleset: wide\nstages: [new]\npermissions:\n  - id: wide\n    effect: allow\n    when:\n      any:\n{leaves}\n"
    report = policy.validate_source(source)
    assert [p.code for p in report.problems] == ["E_ENGINE_LIMIT"]
    assert report.problems[0].path == "permissions[0]"


def test_lint_warnings() -> None:
    source = """\
ruleset: lint
stages: [new, closed]
permissions:
  - {id: block, actions: [refund], effect: deny}
  - {id: shadowed, actions: [refund], actors: [ai], effect: allow}
  - {id: reply-new, actions: [reply], stages: [new], effect: allow}
routing:
  - {id: all, assign: {team: a}}
  - {id: late, when: {fact: customer.vip, eq: true}, assign: {team: b}}
"""
    report = policy.validate_source(source)
    assert report.ok
    codes = {w.code for w in report.warnings}
    assert {"W_SHADOWED", "W_UNREACHABLE_ROUTE", "W_UNCOVERED"} <= codes


INTERLEAVED = """\
ruleset: order
stages: [new, open]
permissions:
  - {id: reply-new, actions: [reply], stages: [new], effect: allow}
  - {id: vip, actions: [refund], when: {fact: customer.is_vip, eq: true}, effect: allow}
  - {id: bad, actions: [refund], effect: nope}
routing:
  - {id: r, when: {fact: order.opened, eq: true}, assign: {team: a}}
  - {id: late, when: {fact: ticket.nope, eq: 1}, assign: {team: b}}
"""


def test_problems_and_warnings_in_file_order() -> None:
    # Lint (W_UNCOVERED) runs last and the effect is checked before the condition; the report still reads
    # top to bottom, and in_file_order interleaves errors and warnings.
    report = policy.validate_source(INTERLEAVED)
    assert [(p.code, p.line) for p in report.problems] == [("E_UNKNOWN_EFFECT", 6), ("E_UNKNOWN_FACT", 9)]
    assert [(w.code, w.line) for w in report.warnings] == [("W_UNKNOWN_FACT", 5), ("W_UNKNOWN_FACT", 8)]
    assert [(p.code, p.line) for p in report.in_file_order] == [
        ("W_UNKNOWN_FACT", 5),
        ("E_UNKNOWN_EFFECT", 6),
        ("W_UNKNOWN_FACT", 8),
        ("E_UNKNOWN_FACT", 9),
    ]


def test_lint_warnings_sorted_by_position() -> None:
    source = """\
ruleset: lint
stages: [new, closed]
permissions:
  - {id: reply-new, actions: [reply], stages: [new], effect: allow}
  - {id: note-closed, actions: [note], stages: [closed], when: {fact: customer.is_vip, eq: true}, effect: allow}
"""
    report = policy.validate_source(source)
    assert report.ok
    positions = [(w.line, w.col) for w in report.warnings]
    assert positions == sorted(positions)
    assert {(w.code, w.path) for w in report.warnings} >= {
        ("W_UNCOVERED", "permissions[0]"),
        ("W_UNCOVERED", "permissions[1]"),
        ("W_UNKNOWN_FACT", "permissions[1].when.fact"),
    }


def test_unknown_fact_errors_stay_errors() -> None:
    # Namespaces Bookbag fills itself are closed (E_UNKNOWN_FACT); an unknown namespace is an error too.
    for fact in ("ticket.colour", "classifier.mood", "time.minute", "shop.name", "customer"):
        source = f"ruleset: x\nstages: [new]\nrouting:\n  - {{id: r, when: {{fact: {fact}, eq: 1}}, assign: {{team: a}}}}\n"
        report = policy.validate_source(source)
        assert [p.code for p in report.problems] == ["E_UNKNOWN_FACT"], fact
    for fact in (
        "customer.vip",
        "order.delivered",
        "custom.anything",
        "ticket.custom.x",
        "customer.custom.a.b",
    ):
        source = f"ruleset: x\nstages: [new]\nrouting:\n  - {{id: r, when: {{fact: {fact}, eq: 1}}, assign: {{team: a}}}}\n"
        report = policy.validate_source(source)
        assert report.ok and report.warnings == (), (fact, report.warnings)


def test_known_teams_none_means_no_team_check() -> None:
    source = "ruleset: x\nstages: [new]\nrouting:\n  - {id: r, assign: {team: nowhere}}\n"
    assert policy.validate_source(source).warnings == ()
    warned = policy.validate_source(source, known_teams=frozenset())
    assert [(w.code, w.path) for w in warned.warnings] == [("W_UNKNOWN_TEAM", "routing[0].assign.team")]
    assert "(its teams: none)" in warned.warnings[0].message


def test_set_category_fits_the_ticket() -> None:
    long = "c" * 61
    source = f"ruleset: x\nstages: [new]\nrouting:\n  - {{id: r, set: {{category: {long}}}}}\n"
    report = policy.validate_source(source)
    assert [(p.code, p.path) for p in report.problems] == [("E_VALUE", "routing[0].set.category")]
    assert policy.validate_source(source.replace(long, "c" * 60)).ok


DECLARED = """\
ruleset: declared
stages: [new, open]
transitions: {new: [open]}
actions:
  external: [create_return_label, loyalty_points]
permissions:
  - id: ai-labels
    actors: [ai]
    actions: [create_return_label]
    effect: require_approval
    approvers: [agent]
  - id: points
    actors: [agent]
    when: {fact: action.type, eq: loyalty_points}
    effect: allow
"""


def test_a_ruleset_declares_external_action_types_its_rules_may_name() -> None:
    ruleset = policy.load_ruleset(DECLARED)
    assert ruleset.external_actions == ("create_return_label", "loyalty_points")
    engine = policy.PolicyEngine()

    def effect(actor: str, type_: str) -> str:
        facts = {"ticket": {"stage": "new"}, "action": {"type": type_, "actor": actor}}
        return engine.decide(ruleset, facts).effect

    assert effect("ai", "create_return_label") == "require_approval"
    assert effect("agent", "loyalty_points") == "allow"
    assert effect("ai", "loyalty_points") == "deny"  # the default effect


def test_declared_action_types_are_checked() -> None:
    bad = DECLARED.replace(
        "external: [create_return_label, loyalty_points]",
        "external: [Create-Label, refund, loyalty_points, loyalty_points]",
    )
    report = policy.validate_source(bad, "declared.yaml")
    got = {(p.code, p.path) for p in report.problems}
    assert ("E_ACTION_NAME", "actions.external[0]") in got
    assert ("E_ACTION_CLASH", "actions.external[1]") in got
    assert ("E_VALUE", "actions.external[3]") in got
    # A rule naming a type nobody declared is refused as before, in scopes and in conditions.
    assert ("E_UNKNOWN_ACTION", "permissions[0].actions[0]") in got
    undeclared = DECLARED.replace("external: [create_return_label, loyalty_points]", "external: []")
    codes = {(p.code, p.path) for p in policy.validate_source(undeclared).problems}
    assert codes == {
        ("E_UNKNOWN_ACTION", "permissions[0].actions[0]"),
        ("E_UNKNOWN_ACTION", "permissions[1].when.eq"),
    }
    unknown_key = DECLARED.replace("  external:", "  internal:")
    assert "E_UNKNOWN_KEY" in {p.code for p in policy.validate_source(unknown_key).problems}
