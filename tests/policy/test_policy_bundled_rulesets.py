"""Every ruleset shipped in ``rulesets/`` validates without errors and passes its own tests on durable_rules."""

from __future__ import annotations

from pathlib import Path

import pytest

import policy
from policy import PolicyEngine

BUNDLED = sorted(policy.RULESETS_DIR.glob("*.yaml"))


def test_the_examples_are_bundled() -> None:
    assert {p.name for p in BUNDLED} >= {"default.yaml", "fashion_store.yaml", "electronics_store.yaml"}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_ruleset_validates_and_its_tests_pass(path: Path) -> None:
    report = policy.validate_source(path.read_text(encoding="utf-8"), path.name)
    assert report.ok, [str(p) for p in report.problems]
    assert report.ruleset is not None
    assert report.ruleset.tests, f"{path.name} ships no tests"
    engine = PolicyEngine(max_compiled=2)
    try:
        results = engine.run_tests(report.ruleset)
    finally:
        engine.close()
    assert [(r.name, r.message) for r in results if not r.passed] == []
    assert len(results) == len(report.ruleset.tests)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_ruleset_tests_cover_every_section(path: Path) -> None:
    """The shipped examples are documentation: their tests exercise permissions, routing and escalations."""
    ruleset = policy.load_ruleset(path.read_text(encoding="utf-8"), path.name)
    keys = {key for test in ruleset.tests for key in test.expect}
    assert "effect" in keys and "route" in keys and "escalations" in keys
    assert any(test.expect.get("handoff") is True for test in ruleset.tests)
