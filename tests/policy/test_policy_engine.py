"""PolicyEngine owner layer: thread safety, bounded cache with freeing, and a scaled-down soak."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import policy
from policy import PolicyEngine, ReferenceEvaluator

ROOT = Path(__file__).resolve().parents[2]


def _variant(limit: int) -> policy.Ruleset:
    source = policy.default_ruleset_path().read_text()
    return policy.load_ruleset(
        source.replace("{fact: action.amount, lte: 50}", f"{{fact: action.amount, lte: {limit}}}")
    )


def test_threads_share_one_engine() -> None:
    engine = PolicyEngine(max_compiled=3)
    rulesets = [_variant(limit) for limit in (10, 30, 60, 90)]  # more versions than the cache holds
    reference = ReferenceEvaluator()
    errors: list[str] = []

    def work(seed: int) -> None:
        for i in range(150):
            ruleset = rulesets[(seed + i) % len(rulesets)]
            facts = {
                "ticket": {"stage": "triaged"},
                "action": {"type": "refund", "actor": "ai", "amount": (i * 7) % 100},
                "classifier": {"category_confidence": 0.9},
            }
            if engine.decide(ruleset, facts).to_dict() != reference.decide(ruleset, facts).to_dict():
                errors.append(f"{seed}/{i}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert engine.compiled_count() <= 3
    assert engine.stats["evicted"] > 0


def test_close_frees_everything() -> None:
    engine = PolicyEngine(max_compiled=2)
    ruleset = _variant(40)
    engine.decide(ruleset, {"action": {"type": "reply", "actor": "ai"}})
    assert engine.compiled_count() == 1
    engine.close()
    assert engine.compiled_count() == 0
    # Usable again after close: recompiles on demand.
    assert engine.decide(ruleset, {"action": {"type": "reply", "actor": "ai"}}).effect == "deny"


def test_scaled_down_soak_memory_flat() -> None:
    # In a process of its own: the RSS measured is the soak's, not the whole test session's (whose garbage
    # and caches from earlier tests move it by several MiB either way).
    script = (
        "import json, sys; sys.path.insert(0, 'bench'); from policy_soak import run; "
        "print(json.dumps(run(evaluations=6000, merchants=12, publishes=60, samples=8, max_compiled=8, "
        "progress=False)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["publishes"] == 60
    assert result["stats"]["evicted"] > 0
    assert result["stats"]["state_resets"] == 0
    # Bounded cache + deleted engine rulesets: no steady growth once warm (allow allocator noise).
    assert result["rss_growth_after_warmup_mib"] < 8, result["series"]


def test_unusual_fact_containers_and_types_decide_like_plain_values() -> None:
    """Read-only mappings, deeper custom paths and str/int subclasses (enums) take the extractor's general
    path; they must decide exactly as the equivalent plain dicts and values, and as the reference."""
    import enum
    from types import MappingProxyType

    class Stage(enum.StrEnum):
        TRIAGED = "triaged"

    class Amount(enum.IntEnum):
        TWENTY = 20

    source = policy.default_ruleset_path().read_text()
    source = source.replace(
        "{fact: order.total, lt: 0.01}",
        "{any: [{fact: order.total, lt: 0.01}, {fact: order.custom.flag, eq: x}]}",
    )
    ruleset = policy.load_ruleset(source)
    plain = {
        "ticket": {"stage": "triaged", "tags": ["angry"]},
        "customer": {"vip": True},
        "order": {"custom": {"flag": "y"}, "total": 30},
        "action": {"type": "refund", "actor": "ai", "amount": 20},
        "classifier": {"category_confidence": 0.9},
    }
    unusual = MappingProxyType(
        {
            "ticket": MappingProxyType({"stage": Stage.TRIAGED, "tags": ("angry",)}),
            "customer": {"vip": True},
            "order": MappingProxyType({"custom": MappingProxyType({"flag": "y"}), "total": 30.0}),
            "action": {"type": "refund", "actor": "ai", "amount": Amount.TWENTY},
            "classifier": {"category_confidence": 0.9},
        }
    )
    engine, reference = PolicyEngine(), ReferenceEvaluator()
    want = engine.decide(ruleset, plain)
    assert want.effect == "require_approval" and want.handoff_rules == ("angry-vip",)
    for facts in (plain, unusual):
        assert engine.decide(ruleset, facts).effect == want.effect
        assert engine.decide(ruleset, facts).deciding_rules == want.deciding_rules
        assert engine.decide(ruleset, facts).to_dict() == reference.decide(ruleset, facts).to_dict()
    flagged = {**plain, "order": {"custom": {"flag": "x"}, "total": 30}}
    assert engine.decide(ruleset, flagged).effect == "deny"
    assert engine.decide(ruleset, flagged).facts["order"] == {"custom": {"flag": "x"}, "total": 30}
