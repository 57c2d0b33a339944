"""``matches`` in RE2's dialect: linear time, the same answer on durable_rules and the reference, evaluated
outside the engine lock; what RE2 cannot run is E_BAD_REGEX naming the construct."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import policy
from policy import PolicyEngine, ReferenceEvaluator, RulesetLimits
from policy import engine as engine_module
from policy.regex import Regex, unsupported_construct


def _ruleset(pattern: str, limits: RulesetLimits | None = None) -> policy.Ruleset:
    source = (
        "ruleset: rx\nstages: [new]\npermissions:\n  - {id: reply, actions: [reply], effect: allow}\n"
        f"  - {{id: hit, actions: [reply], when: {{fact: ticket.body, matches: '{pattern}'}}, effect: deny}}\n"
    )
    return policy.load_ruleset(source, limits=limits)


def _both(ruleset: policy.Ruleset, body: Any) -> list[str]:
    facts = {"ticket": {"stage": "new", "body": body}, "action": {"type": "reply", "actor": "agent"}}
    return [
        PolicyEngine(max_compiled=1).decide(ruleset, facts).effect,
        ReferenceEvaluator().decide(ruleset, facts).effect,
    ]


def test_catastrophic_patterns_answer_at_once_on_both_evaluators() -> None:
    for pattern, body in (
        ("(a+)+$", "a" * 30 + "!"),
        ("(x+x+)+y", "x" * 5000),
        ("(.*a){20}", "a" * 19 + "b" * 30),
    ):
        ruleset = _ruleset(pattern)
        started = time.perf_counter()
        assert _both(ruleset, body) == ["allow", "allow"], pattern
        assert time.perf_counter() - started < 0.5, pattern  # Python's re: seconds to hours


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(\w+) \1", "backreference \\1"),
        (r"(?P<w>\w+) (?P=w)", "named backreference"),
        (r"refund(?= now)", "lookahead"),
        (r"refund(?! later)", "negative lookahead"),
        (r"(?<=order )\d+", "lookbehind"),
        (r"(?<!no )refund", "negative lookbehind"),
        (r"(?>a+)b", "atomic group"),
        (r"a++b", "possessive quantifier ++"),
        (r"\d{2}+", "possessive quantifier {2}+"),
        (r"end\Z", "\\Z"),
    ],
)
def test_constructs_re2_cannot_run_are_named(pattern: str, construct: str) -> None:
    source = (
        "ruleset: rx\nstages: [new]\nhandoff:\n  - id: h\n"
        f"    when: {{fact: ticket.body, matches: '{pattern}'}}\n"
    )
    (problem,) = policy.validate_source(source).problems
    assert (problem.code, problem.line, problem.path) == ("E_BAD_REGEX", 5, "handoff[0].when.matches")
    assert construct in problem.message and "RE2" in problem.message


@pytest.mark.parametrize(
    "pattern",
    [r"[(?=]", r"\(?=x", r"x}+", r"[[:alpha:]]+", r"a{2,3}?", r"(?i)(?P<word>refund)\b", r"\\1"],
)
def test_look_alikes_of_unsupported_constructs_are_accepted(pattern: str) -> None:
    assert unsupported_construct(pattern) is None
    Regex(pattern, max_mem=1 << 20, max_text_chars=100)


def test_syntax_errors_are_bad_regex_in_re2_words() -> None:
    source = "ruleset: rx\nstages: [new]\nhandoff:\n  - {id: h, when: {fact: ticket.body, matches: 'a)'}}\n"
    (problem,) = policy.validate_source(source).problems
    assert problem.code == "E_BAD_REGEX" and "unexpected )" in problem.message


def test_a_pattern_over_the_memory_budget_is_refused() -> None:
    huge = r"\pL{300}"  # 300 Unicode letters: a program of several MiB in UTF-8 mode
    source = f"ruleset: rx\nstages: [new]\nhandoff:\n  - {{id: h, when: {{fact: ticket.body, matches: '{huge}'}}}}\n"
    (problem,) = policy.validate_source(source).problems
    assert problem.code == "E_BAD_REGEX" and "pattern too large" in problem.message
    assert policy.validate_source(source, limits=RulesetLimits(regex_max_mem_bytes=64 << 20)).ok


def test_only_the_first_max_text_chars_are_searched_on_both_evaluators() -> None:
    ruleset = _ruleset("needle", RulesetLimits(regex_max_text_chars=20))
    assert _both(ruleset, "x" * 10 + "needle") == ["deny", "deny"]
    assert _both(ruleset, "x" * 20 + "needle") == ["allow", "allow"]


def test_odd_text_never_fails_a_match() -> None:
    ruleset = _ruleset("a.b")
    assert _both(ruleset, "a\ud800b") == ["deny", "deny"]  # a lone surrogate is one character
    assert _both(ruleset, 42) == ["allow", "allow"]  # not a string: no match
    assert _both(ruleset, ["a-b"]) == ["allow", "allow"]


def test_matches_run_outside_the_engine_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RE2 search of a durable_rules decision happens while this thread does not hold the lock."""
    held: list[bool] = []
    search = Regex.search

    def watched(self: Regex, text: str) -> bool:
        # RLock._is_owned: whether the calling thread holds it (what threading.Condition uses).
        held.append(engine_module._ENGINE_LOCK._is_owned())  # type: ignore[attr-defined]
        return search(self, text)

    monkeypatch.setattr(Regex, "search", watched)
    ruleset = _ruleset("(?i)lawyer")
    engine = PolicyEngine(max_compiled=1)
    facts = {"ticket": {"stage": "new", "body": "my LAWYER"}, "action": {"type": "reply", "actor": "ai"}}
    assert engine.decide(ruleset, facts).effect == "deny"
    assert engine.decide_many(ruleset, [facts] * 3)[0].effect == "deny"
    assert len(held) == 4 and not any(held)

    # And while another thread holds the lock, the regex work of a decision still proceeds.
    held.clear()
    release = threading.Event()

    def hold_lock() -> None:
        with engine_module._ENGINE_LOCK:
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    decider = threading.Thread(target=engine.decide, args=(ruleset, facts))
    holder.start()
    try:
        time.sleep(0.05)
        decider.start()
        deadline = time.monotonic() + 5
        while not held and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held == [False]  # searched already, before the engine call that waits for the lock
    finally:
        release.set()
        holder.join()
        if decider.ident is not None:
            decider.join()
