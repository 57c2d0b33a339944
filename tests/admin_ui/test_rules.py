"""The rules screen: validation problems at their line, simulation, publish (blocked while broken), the
version history with rollback."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

RULESET = """\
ruleset: ui-test
description: A small ruleset for the browser tests
stages: [new, triaged, assigned, in_progress, waiting_on_customer, escalated, resolved, closed]
transitions:
  new: [triaged]
  triaged: [assigned, escalated, resolved]
  assigned: [in_progress, escalated]
  in_progress: [waiting_on_customer, resolved, escalated]
  waiting_on_customer: [in_progress, resolved]
  escalated: [assigned, resolved]
  resolved: [closed]
  closed: []
defaults: {effect: deny}
permissions:
  - id: ai-small-refund
    actors: [ai]
    actions: [refund]
    stages: [triaged, in_progress]
    when:
      all:
        - {fact: action.amount, lte: 50}
        - {fact: classifier.category_confidence, gte: 0.8}
    effect: allow
  - id: big-refund-needs-lead
    actions: [refund]
    when: {fact: action.amount, gt: 50}
    effect: require_approval
    approvers: [admin]
  - id: partner-tags-new
    actors: [partner]
    actions: [tag]
    stages: [new, triaged]
    effect: allow
  - id: agents-reply
    actors: [agent, ai]
    actions: [reply]
    effect: allow
tests:
  - name: small AI refund is allowed
    facts: {ticket: {stage: triaged}, action: {type: refund, actor: ai, amount: 20}, classifier: {category_confidence: 0.9}}
    expect: {effect: allow, rules: [ai-small-refund]}
"""

ACTIVE = "query { ruleset { version source } rulesetVersions { version active } }"


def open_rules(page: Any, key: str) -> None:
    sign_in(page, key)
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_test_id("active-version")).to_contain_text("Active")


def set_draft(page: Any, source: str) -> None:
    page.get_by_test_id("ruleset-editor").fill(source)
    expect(page.get_by_test_id("validation-status")).not_to_have_text("checking…")


def test_a_validation_error_shows_at_its_line(page: Any, merchant: Merchant) -> None:
    open_rules(page, merchant.keys["admin"])
    set_draft(page, RULESET)
    expect(page.get_by_test_id("validation-status")).to_contain_text("valid")
    expect(page.get_by_test_id("validation-problem")).to_have_count(0)
    # Valid, but the linter notices that partners may tag only in some stages.
    expect(page.get_by_test_id("lint-warning").first).to_contain_text("W_UNCOVERED")
    expect(page.get_by_test_id("lint-warning").first).to_contain_text("actor partner, action tag")

    broken = RULESET.replace("    effect: require_approval", "    effect: maybe_later")
    line = broken.splitlines().index("    effect: maybe_later") + 1
    set_draft(page, broken)
    problems = page.get_by_test_id("validation-problems")
    expect(page.get_by_test_id("validation-status")).to_contain_text("problem")
    problem = problems.locator(f'[data-testid="validation-problem"][data-line="{line}"]')
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text(f"line {line}")
    expect(page.locator(f'[data-testid="editor-gutter"] [data-line="{line}"]')).to_have_class("problem")
    expect(page.get_by_test_id("publish-button")).to_be_disabled()

    set_draft(page, RULESET)
    expect(page.get_by_test_id("validation-problem")).to_have_count(0)


def test_simulate_reads_the_decision_and_its_trace(page: Any, merchant: Merchant) -> None:
    open_rules(page, merchant.keys["admin"])
    set_draft(page, RULESET)
    form = page.get_by_test_id("sim-form")
    form.get_by_test_id("sim-stage").select_option("triaged")
    form.get_by_test_id("sim-actor").select_option("ai")
    form.get_by_test_id("sim-action").select_option("refund")
    form.get_by_test_id("sim-amount").fill("20")
    form.get_by_test_id("sim-confidence").fill("0.9")
    page.get_by_test_id("simulate-button").click()
    effect = page.get_by_test_id("decision-effect").first
    expect(effect).to_have_attribute("data-effect", "allow")
    expect(page.get_by_test_id("deciding-rules").first).to_have_text("ai-small-refund")
    # The active ruleset (the built-in default) decided the same case too, side by side.
    expect(page.get_by_test_id("active-decision-effect").first).to_be_visible()
    expect(page.get_by_test_id("sim-result").first).to_contain_text("ai-small-refund")

    form.get_by_test_id("sim-amount").fill("80")
    page.get_by_test_id("simulate-button").click()
    expect(effect).to_have_attribute("data-effect", "require_approval")
    expect(page.get_by_test_id("deciding-rules").first).to_have_text("big-refund-needs-lead")


def test_simulate_on_existing_tickets(page: Any, live_server: LiveServer, merchant: Merchant) -> None:
    live_server.graphql(
        merchant.keys["partner"],
        'mutation { createTicket(input: {subject: "Broken lamp", body: "It arrived in pieces."}) { errors { code } } }',
    )
    open_rules(page, merchant.keys["admin"])
    set_draft(page, RULESET)
    page.get_by_test_id("sim-mode-tickets").check()
    expect(page.get_by_test_id("sim-ticket-list")).to_contain_text("Broken lamp")
    page.get_by_test_id("simulate-button").click()
    result = page.get_by_test_id("sim-result").first
    expect(result).to_contain_text("Broken lamp")
    # A refund of 40 by an AI on this ticket: the draft decides, its trace shows every rule considered.
    expect(result.get_by_test_id("decision-effect")).to_have_attribute(
        "data-effect", re.compile("allow|deny")
    )
    expect(result.get_by_test_id("trace-rule").first).to_be_visible()


def test_publish_then_roll_back(page: Any, live_server: LiveServer, merchant: Merchant) -> None:
    key = merchant.keys["admin"]
    open_rules(page, key)
    publish = page.get_by_test_id("publish-button")

    set_draft(page, RULESET)
    expect(publish).to_be_disabled()  # no message yet
    page.get_by_test_id("publish-message").fill("first version")
    expect(publish).to_be_enabled()
    publish.click()
    expect(page.get_by_test_id("publish-note")).to_have_text("Published version 1.")
    expect(page.get_by_test_id("active-version")).to_contain_text("version 1")

    set_draft(page, RULESET.replace("A small ruleset", "A slightly changed ruleset"))
    page.get_by_test_id("publish-message").fill("second version")
    publish.click()
    expect(page.get_by_test_id("publish-note")).to_have_text("Published version 2.")
    assert live_server.graphql(key, ACTIVE)["ruleset"]["version"] == 2

    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id("version-row-2")).to_have_attribute("data-active", "true")
    page.get_by_test_id("diff-version-2").click()
    expect(page.get_by_test_id("version-diff")).to_contain_text("+1 −1")
    page.get_by_test_id("activate-version-1").click()
    expect(page.get_by_test_id("active-version")).to_contain_text("version 1")
    expect(page.get_by_test_id("version-row-1")).to_have_attribute("data-active", "true")
    data = live_server.graphql(key, ACTIVE)
    assert data["ruleset"]["version"] == 1
    assert data["ruleset"]["source"] == RULESET


def test_publish_is_blocked_while_the_ruleset_tests_fail(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    key = merchant.keys["admin"]
    open_rules(page, key)
    failing = RULESET.replace("expect: {effect: allow, rules: [ai-small-refund]}", "expect: {effect: deny}")
    set_draft(page, failing)
    page.get_by_test_id("publish-message").fill("this must not go live")
    expect(page.get_by_test_id("tests-summary")).to_have_text("0/1 tests pass")
    expect(page.get_by_test_id("test-results")).to_contain_text("small AI refund is allowed")
    expect(page.get_by_test_id("publish-button")).to_be_disabled()
    expect(page.get_by_test_id("publish-note")).to_contain_text("tests are failing")
    assert live_server.graphql(key, ACTIVE)["ruleset"]["version"] is None

    # Fixing the test unblocks publishing.
    set_draft(page, RULESET)
    expect(page.get_by_test_id("tests-summary")).to_have_text("1/1 tests pass")
    expect(page.get_by_test_id("publish-button")).to_be_enabled()


def test_the_coverage_grid_marks_default_only_cells(page: Any, merchant: Merchant) -> None:
    open_rules(page, merchant.keys["admin"])
    set_draft(page, RULESET)
    page.get_by_test_id("tab-coverage").click()
    page.get_by_test_id("coverage-actor").select_option("ai")
    reply = page.get_by_test_id("coverage-triaged-reply")
    expect(reply).to_have_attribute("data-effect", "allow")
    expect(reply).to_have_attribute("data-default-only", "false")
    expect(reply).to_contain_text("agents-reply")
    cancel = page.get_by_test_id("coverage-triaged-cancel_order")
    expect(cancel).to_have_attribute("data-effect", "deny")
    expect(cancel).to_have_attribute("data-default-only", "true")
    # Partners may not reply under this draft: the grid follows the actor.
    page.get_by_test_id("coverage-actor").select_option("partner")
    expect(page.get_by_test_id("coverage-triaged-reply")).to_have_attribute("data-default-only", "true")


def test_backtest_shows_what_flips(page: Any, live_server: LiveServer, merchant: Merchant) -> None:
    admin = merchant.keys["admin"]
    published = live_server.graphql(
        admin,
        'mutation($s: String!) { publishRuleset(source: $s, message: "base") { errors { code message } } }',
        {"s": RULESET},
    )
    assert published["publishRuleset"]["errors"] == []
    created = live_server.graphql(
        merchant.keys["partner"],
        'mutation { createTicket(input: {subject: "Refund please", body: "The lamp arrived broken."}) '
        "{ ticket { id } } }",
    )
    decided = live_server.graphql(
        merchant.keys["agent"],
        "mutation($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 80}) "
        "{ errors { code } decision { effect } } }",
        {"t": created["createTicket"]["ticket"]["id"]},
    )
    assert decided["requestAction"]["decision"]["effect"] == "REQUIRE_APPROVAL"

    open_rules(page, admin)
    set_draft(
        page, RULESET.replace("when: {fact: action.amount, gt: 50}", "when: {fact: action.amount, gt: 100}")
    )
    page.get_by_test_id("tab-backtest").click()
    page.get_by_test_id("backtest-button").click()
    expect(page.get_by_test_id("backtest-summary")).to_contain_text("1 of 1 replayed decisions change")
    expect(page.get_by_test_id("backtest-chart")).to_contain_text("refund: require approval → deny")
    changed = page.get_by_test_id("backtest-changed")
    expect(changed).to_contain_text("big-refund-needs-lead")
    expect(changed).to_contain_text("refund 80")
