"""Policy engine soak: many evaluations across many merchants' rulesets and publishes; RSS must stay flat.

Each merchant has its own ruleset (a variation of the default); a "publish" replaces one merchant's
ruleset with a new version (new digest, so a new compile and, once the LRU is full, an eviction that
deletes engine rulesets). Evaluations pick a random merchant. RSS is sampled as it goes.

    nice .venv/bin/python bench/policy_soak.py [--evaluations 1000000] [--merchants 200] [--publishes 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import policy  # noqa: E402
from policy import PolicyEngine, Ruleset  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4


def merchant_ruleset(base: str, merchant: int, version: int) -> Ruleset:
    limit = 20 + (merchant * 7 + version * 13) % 180
    source = base.replace("{fact: action.amount, lte: 50}", f"{{fact: action.amount, lte: {limit}}}")
    source = source.replace("ruleset: default", f"ruleset: merchant-{merchant}-v{version}")
    return policy.load_ruleset(source, f"merchant-{merchant}.yaml")


def run(
    evaluations: int,
    merchants: int,
    publishes: int,
    samples: int = 20,
    max_compiled: int = 64,
    progress: bool = True,
    seed: int = 1,
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    from policy_bench import random_facts

    rng = random.Random(seed)
    base = policy.default_ruleset_path().read_text()
    versions = [0] * merchants
    active = [merchant_ruleset(base, m, 0) for m in range(merchants)]
    facts_pool = [random_facts(rng) for _ in range(2000)]
    engine = PolicyEngine(max_compiled=max_compiled)
    publish_every = max(1, evaluations // max(1, publishes))
    sample_every = max(1, evaluations // samples)
    series: list[dict[str, Any]] = []
    effects: dict[str, int] = {}
    published = 0
    start = time.perf_counter()
    for i in range(evaluations):
        if publishes and i % publish_every == 0 and published < publishes:
            m = rng.randrange(merchants)
            versions[m] += 1
            active[m] = merchant_ruleset(base, m, versions[m])
            published += 1
        ruleset = active[rng.randrange(merchants)]
        facts = facts_pool[i % len(facts_pool)]
        kind = i % 10
        if kind < 7:
            decision = engine.decide(ruleset, facts)
            effects[decision.effect] = effects.get(decision.effect, 0) + 1
        elif kind < 9:
            engine.route(ruleset, facts)
        else:
            engine.escalations_due(ruleset, facts)
        if i % sample_every == 0 or i == evaluations - 1:
            point = {
                "evaluations": i + 1,
                "rss_mib": round(rss_kib() / 1024, 1),
                "seconds": round(time.perf_counter() - start, 1),
                "compiled": engine.compiled_count(),
                "publishes": published,
            }
            series.append(point)
            if progress:
                print(json.dumps(point), file=sys.stderr, flush=True)
    engine.close()
    warm = series[len(series) // 4 :] if len(series) >= 4 else series
    return {
        "evaluations": evaluations,
        "merchants": merchants,
        "publishes": published,
        "max_compiled": max_compiled,
        "seconds": round(time.perf_counter() - start, 1),
        "stats": engine.stats,
        "effects": effects,
        "rss_mib_first": series[0]["rss_mib"],
        "rss_mib_after_warmup": warm[0]["rss_mib"],
        "rss_mib_last": series[-1]["rss_mib"],
        "rss_mib_max": max(p["rss_mib"] for p in series),
        "rss_growth_after_warmup_mib": round(series[-1]["rss_mib"] - warm[0]["rss_mib"], 1),
        "series": series,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--publishes", type=int, default=1000)
    parser.add_argument("--max-compiled", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "policy_soak.json"))
    args = parser.parse_args(argv)
    result = run(args.evaluations, args.merchants, args.publishes, max_compiled=args.max_compiled)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
