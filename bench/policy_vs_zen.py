"""Bookbag's policy engine against GoRules Zen (``zen-engine``) on the same decisions, one thread, one core.

Both engines answer the same fact sets (``policy_bench.random_facts``, seed 42; none repeats within a timed
run) for the bundled default ruleset and the generated 500-rule ruleset. Zen gets one decision table
translated mechanically from Bookbag's parsed ruleset (``zen_graph``) in two forms:

* ``collect``: every rule is a row (scope columns actor/action/stage plus one condition column); every
  matching row is collected and an expression node resolves the effect (deny > require_approval > allow,
  an AI handoff turns allow into require_approval, else the default): the same work Bookbag does.
* ``first``: rows ordered deny, require_approval, allow, then a default row; the first hit is the effect
  (Zen stops early; it cannot say which rules matched, so it does less than a Bookbag decision).

Before any timing every engine's effect is compared with Bookbag's on every fact set, plus edge-case fact
sets (missing namespaces, ``None``, wrong types); one disagreement stops the run. Then ``--rounds``
interleaved rounds time each engine (order rotated every round). Bookbag's figure is one
``PolicyEngine.decide`` call per decision (a full ``Decision``: effect, matched and deciding rules,
approvers, handoff, the facts read; the explanation is built when read); ``decide+to_dict`` adds what the
audit record of a requestAction costs. ``--batch`` adds ``decide_many`` against Zen's ``evaluate_batch``.

    .venv/bin/python bench/policy_vs_zen.py [--decisions 20000] [--rounds 3] [--batch]
        [--out bench/results/policy_vs_zen.json]

Zen's ``matches()`` compiles its pattern on every call (about 0.4 ms for the default ruleset's handoff
pattern), so a pattern made only of literal alternatives (``(?i)chargeback|lawyer``) is given to Zen as
``lower()`` plus ``contains()`` instead: the fastest form Zen has, not a handicap.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import zen  # noqa: E402
from policy_bench import generated_ruleset_source, profile, random_facts  # noqa: E402

import policy  # noqa: E402
from policy.model import AllOf, AnyOf, Condition, Leaf, NotOf  # noqa: E402

# -- the Zen translation ---------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise ValueError(f"no Zen literal for {value!r}")


def _alternatives(pattern: str) -> tuple[bool, list[str]] | None:
    """``(?i)a|b c`` -> (True, ["a", "b c"]) when every alternative is a plain literal, else None."""
    insensitive = pattern.startswith("(?i)")
    alternatives = (pattern[4:] if insensitive else pattern).split("|")
    if not all(re.fullmatch(r"[A-Za-z0-9 ]+", a) for a in alternatives):
        return None
    return insensitive, alternatives


def zen_condition(cond: Condition) -> str:
    """A Zen expression true exactly when Bookbag's condition holds (typed, a missing fact is null)."""
    if isinstance(cond, AllOf):
        return " and ".join(f"({zen_condition(c)})" for c in cond.items)
    if isinstance(cond, AnyOf):
        return " or ".join(f"({zen_condition(c)})" for c in cond.items)
    if isinstance(cond, NotOf):
        return f"not ({zen_condition(cond.item)})"
    assert isinstance(cond, Leaf)
    path, op, value = ".".join(cond.fact_path), cond.op, cond.value
    if op == "exists":
        return f"{path} != null" if value else f"{path} == null"
    if op == "eq":  # Zen's == is typed (1 != "1", true != 1), numbers are decimals (50 == 50.0)
        return f"{path} == {_literal(value)}"
    if op == "ne":
        return f"{path} != null and {path} != {_literal(value)}"
    if op == "in":
        return " or ".join(f"{path} == {_literal(v)}" for v in value)
    if op == "not_in":
        return f"{path} != null and not (" + " or ".join(f"{path} == {_literal(v)}" for v in value) + ")"
    if op in ("lt", "lte", "gt", "gte"):
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return f"type({path}) == 'number' and {path} {symbol} {_literal(value)}"
    if op == "contains":
        return (
            f"(type({path}) == 'array' or type({path}) == 'string') and contains({path}, {_literal(value)})"
        )
    if op == "matches":
        literal = _alternatives(value)
        if literal is None:
            return f"type({path}) == 'string' and matches({path}, {json.dumps(value)})"
        insensitive, alternatives = literal
        subject = f"lower({path})" if insensitive else path
        found = " or ".join(
            f"contains({subject}, {json.dumps(a.lower() if insensitive else a)})" for a in alternatives
        )
        return f"type({path}) == 'string' and ({found})"
    raise ValueError(f"unknown operator {op!r}")


def _unary(values: tuple[str, ...] | None) -> str:
    return "" if values is None else ", ".join(json.dumps(v) for v in values)


def zen_graph(ruleset: policy.Ruleset, hit: str) -> dict[str, Any]:
    """A JDM graph (input -> decision table [-> effect expression] -> output) for ``ruleset``'s
    permissions and handoff rules; ``hit`` is ``collect`` or ``first``."""
    handoff = ""
    if ruleset.handoff:
        any_handoff = " or ".join(
            f"({zen_condition(h.when)})" if h.when is not None else "true" for h in ruleset.handoff
        )
        handoff = f"action.actor == 'ai' and ({any_handoff})"

    def row(rid: str, actors: Any, actions: Any, stages: Any, when: Any, effect: str) -> dict[str, str]:
        return {
            "_id": rid,
            "actor": _unary(actors),
            "action": _unary(actions),
            "stage": _unary(stages),
            "when": "" if when is None else zen_condition(when),
            "id": json.dumps(rid),
            "effect": effect,
        }

    rows = []
    extra: dict[str, Any] = {}
    nodes_after: list[dict[str, Any]] = []
    default = ruleset.default_effect
    if hit == "collect":
        rows = [
            row(r.id, r.actors, r.actions, r.stages, r.when, json.dumps(r.effect))
            for r in ruleset.permissions
        ]
        rows += [row(h.id, ("ai",), None, None, h.when, json.dumps("handoff")) for h in ruleset.handoff]
        extra = {"outputPath": "hits"}
        flips = "(some(hits, #.effect == 'handoff') ? 'require_approval' : 'allow')"
        allowed = flips if handoff else "'allow'"
        otherwise = flips if default == "allow" and handoff else json.dumps(default)
        effect = (
            "some(hits, #.effect == 'deny') ? 'deny' : "
            "some(hits, #.effect == 'require_approval') ? 'require_approval' : "
            f"some(hits, #.effect == 'allow') ? {allowed} : {otherwise}"
        )
        nodes_after = [
            {
                "id": "effect",
                "type": "expressionNode",
                "name": "effect",
                "position": {"x": 400, "y": 0},
                "content": {"expressions": [{"id": "e1", "key": "effect", "value": effect}]},
            }
        ]
    else:
        allow_out = json.dumps("allow") if not handoff else f"{handoff} ? 'require_approval' : 'allow'"
        for tier in ("deny", "require_approval", "allow"):
            for r in ruleset.permissions:
                if r.effect == tier:
                    out = allow_out if tier == "allow" else json.dumps(tier)
                    rows.append(row(r.id, r.actors, r.actions, r.stages, r.when, out))
        rows.append(
            row(
                "__default__",
                None,
                None,
                None,
                None,
                allow_out if default == "allow" else json.dumps(default),
            )
        )
    table = {
        "id": "table",
        "type": "decisionTableNode",
        "name": "permissions",
        "position": {"x": 200, "y": 0},
        "content": {
            "hitPolicy": hit,
            "inputs": [
                {"id": "actor", "name": "actor", "field": "action.actor"},
                {"id": "action", "name": "action", "field": "action.type"},
                {"id": "stage", "name": "stage", "field": "ticket.stage"},
                {"id": "when", "name": "when"},  # no field: each cell is a whole expression over the input
            ],
            "outputs": [
                {"id": "id", "name": "id", "field": "id"},
                {"id": "effect", "name": "effect", "field": "effect"},
            ],
            "rules": rows,
            **extra,
        },
    }
    nodes = [
        {"id": "in", "type": "inputNode", "name": "facts", "position": {"x": 0, "y": 0}, "content": {}},
        table,
        *nodes_after,
        {
            "id": "out",
            "type": "outputNode",
            "name": "decision",
            "position": {"x": 600, "y": 0},
            "content": {},
        },
    ]
    ids = [n["id"] for n in nodes]
    edges = [
        {"id": f"e{i}", "sourceId": a, "targetId": b, "type": "edge"}
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    ]
    return {"nodes": nodes, "edges": edges}


class ZenTable:
    """One Zen engine holding one graph, evaluated by key (Zen's usual way: a loader and a cache)."""

    def __init__(self, ruleset: policy.Ruleset, hit: str) -> None:
        self.key = f"permissions-{hit}"
        self.graph = zen_graph(ruleset, hit)
        self.engine = zen.ZenEngine({"loader": {"type": "static", "content": {self.key: self.graph}}})

    def decide(self, facts: dict[str, Any]) -> str:
        return str(self.engine.evaluate(self.key, facts)["result"]["effect"])

    def decide_batch(self, items: list[dict[str, Any]]) -> list[str]:
        out = self.engine.evaluate_batch([{"key": self.key, "context": f} for f in items])
        return [str(r["data"]["result"]["effect"]) for r in out]


# -- fact sets -------------------------------------------------------------------------------------------

_ODD_VALUES: dict[tuple[str, str], list[Any]] = {
    ("action", "amount"): ["10", None, True, 50, 50.0, 0.005],
    ("action", "actor"): [None, 7, "robot"],
    ("action", "type"): [None, "refund ", 3],
    ("classifier", "category_confidence"): ["0.9", None, 0.7],
    ("classifier", "category"): [None, ["refund"]],
    ("customer", "vip"): ["true", 1, None],
    ("order", "delivered"): ["yes", 1],
    ("order", "total"): ["5", None, 0],
    ("ticket", "tags"): ["angry vip", [], ["angry", 3]],
    ("ticket", "body"): [None, 42, "LAWYER!", "Chargeback please"],
    ("ticket", "message_count"): ["7", 6.0, None],
    ("ticket", "stage"): [None, "CLOSED"],
    ("ticket", "priority"): [None, 1],
    ("time", "business_hours"): ["true", None],
}


def edge_facts(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Random facts with holes (missing fields and namespaces, None) and wrong types: agreement check only."""
    out = []
    for _ in range(count):
        facts = random_facts(rng)
        for (namespace, name), values in _ODD_VALUES.items():
            draw = rng.random()
            if draw < 0.12:
                facts[namespace].pop(name, None)
            elif draw < 0.24:
                facts[namespace][name] = rng.choice(values)
        if rng.random() < 0.05:
            facts.pop(rng.choice(["order", "customer", "classifier", "time"]))
        out.append(facts)
    return out


def distinct(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fact sets with any repeat dropped (the headline is measured on fact sets that never repeat)."""
    seen: set[str] = set()
    out = []
    for item in facts:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


# -- agreement and timing --------------------------------------------------------------------------------


def check_agreement(
    label: str, engines: dict[str, Callable[[dict[str, Any]], str]], sets: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Every engine's effect against Bookbag's on every fact set; the first disagreement stops the run."""
    report: dict[str, Any] = {}
    for set_name, items in sets.items():
        want = [engines["bookbag"](f) for f in items]
        effects: dict[str, int] = {}
        for effect in want:
            effects[effect] = effects.get(effect, 0) + 1
        for name, fn in engines.items():
            if name == "bookbag":
                continue
            for index, (facts, expected) in enumerate(zip(items, want, strict=True)):
                got = fn(facts)
                if got != expected:
                    raise SystemExit(
                        f"DISAGREEMENT {label}/{set_name}[{index}]: bookbag {expected!r}, {name} {got!r}\n"
                        f"facts: {json.dumps(facts)}"
                    )
        report[set_name] = {"fact_sets": len(items), "agreed": list(engines), "bookbag_effects": effects}
        print(
            f"agreement {label}/{set_name}: {len(items)} fact sets, every engine agrees {effects}", flush=True
        )
    return report


def measure(fn: Callable[[dict[str, Any]], Any], facts: list[dict[str, Any]]) -> dict[str, float]:
    latencies = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    start = clock()
    for item in facts:
        t0 = clock()
        fn(item)
        latencies.append(clock() - t0)
    elapsed = (clock() - start) / 1e9
    cpu = time.process_time() - cpu0
    latencies.sort()
    return {
        "decisions": len(facts),
        "decisions_per_s": round(len(facts) / elapsed, 1),
        "decisions_per_cpu_s": round(len(facts) / cpu, 1),
        "p50_us": round(latencies[len(latencies) // 2] / 1000, 2),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 2),
    }


def measure_batch(
    fn: Callable[[list[dict[str, Any]]], Any], facts: list[dict[str, Any]], chunk: int
) -> dict[str, float]:
    per: list[float] = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    start = clock()
    for i in range(0, len(facts), chunk):
        part = facts[i : i + chunk]
        t0 = clock()
        fn(part)
        per.append((clock() - t0) / len(part))
    elapsed = (clock() - start) / 1e9
    cpu = time.process_time() - cpu0
    per.sort()
    return {
        "decisions": len(facts),
        "chunk": chunk,
        "decisions_per_s": round(len(facts) / elapsed, 1),
        "decisions_per_cpu_s": round(len(facts) / cpu, 1),
        "p50_us": round(per[len(per) // 2] / 1000, 2),  # per decision, amortised over a chunk
        "p99_us": round(per[min(len(per) - 1, int(len(per) * 0.99))] / 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--edge", type=int, default=5_000, help="edge-case fact sets, agreement check only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", action="store_true", help="also decide_many against evaluate_batch")
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--rulesets", default="default,generated_500")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "policy_vs_zen.json"))
    parser.add_argument(
        "--instructions",
        metavar="ENGINE:RULESET",
        help="only run --decisions decisions of one engine (bookbag, zen_collect, zen_first) on one ruleset "
        "inside functools.reduce, for callgrind: --collect-atstart=no --toggle-collect=functools_reduce",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        return instructions(args.instructions, args.decisions)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    facts = distinct(_facts(42, args.decisions))
    warmup = _facts(7, 500)  # warm-up fact sets of their own: the timed ones are seen once per run
    edge = edge_facts(random.Random(4242), args.edge)
    rulesets = {
        "default": policy.load_default_ruleset(),
        "generated_500": policy.load_ruleset(generated_ruleset_source(500), "generated-500.yaml"),
    }
    rulesets = {k: v for k, v in rulesets.items() if k in args.rulesets.split(",")}
    engine = policy.PolicyEngine()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cores_used": 1,
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "versions": {p: version(p) for p in ("zen-engine", "durable-rules")},
        "command": " ".join(["python bench/policy_vs_zen.py", *(argv if argv is not None else sys.argv[1:])]),
        "fact_sets": len(facts),
        "agreement": {},
        "profile": {},
        "rounds": {},
    }
    single: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {}
    batch: dict[str, dict[str, Callable[[list[dict[str, Any]]], Any]]] = {}
    for label, ruleset in rulesets.items():
        collect, first = ZenTable(ruleset, "collect"), ZenTable(ruleset, "first")
        effects: dict[str, Callable[[dict[str, Any]], str]] = {
            "bookbag": lambda f, r=ruleset: engine.decide(r, f).effect,
            "zen_collect": collect.decide,
            "zen_first": first.decide,
        }
        reference = policy.ReferenceEvaluator()
        sets = {"random": facts, "edge": edge}
        results["agreement"][label] = check_agreement(label, effects, sets)
        for item in facts[:1000] + edge[:1000]:  # and Bookbag's whole decision against the reference
            got, want = engine.decide(ruleset, item).to_dict(), reference.decide(ruleset, item).to_dict()
            if got != want:
                raise SystemExit(f"DISAGREEMENT {label}: engine {got} reference {want} facts {item}")
        for item in warmup:
            for fn in effects.values():
                fn(item)
        results["profile"][label] = profile(engine, ruleset, facts[:2000])
        print(f"profile {label}: {results['profile'][label]}", flush=True)
        single[label] = {
            "bookbag": lambda f, r=ruleset: engine.decide(r, f),
            "zen_collect": collect.decide,
            "zen_first": first.decide,
            "bookbag_decide_to_dict": lambda f, r=ruleset: engine.decide(r, f).to_dict(),
        }
        batch[label] = {
            "bookbag_decide_many": lambda items, r=ruleset: engine.decide_many(r, items),
            "zen_collect_batch": collect.decide_batch,
        }

    for round_no in range(args.rounds):
        for label in rulesets:
            plan: list[tuple[str, bool]] = [(name, False) for name in single[label]]
            if args.batch:
                plan += [(name, True) for name in batch[label]]
            shift = round_no % len(plan)
            order = plan[shift:] + plan[:shift]
            for name, is_batch in order:
                if is_batch:
                    m = measure_batch(batch[label][name], facts, args.chunk)
                else:
                    m = measure(single[label][name], facts)
                m["loadavg_1m"] = round(os.getloadavg()[0], 2)
                results["rounds"].setdefault(label, {}).setdefault(name, []).append(m)
                print(
                    f"round {round_no} {label:13s} {name:24s} {m['decisions_per_s']:>9,.0f}/s "
                    f"p50 {m['p50_us']:>7.1f} p99 {m['p99_us']:>7.1f} us",
                    flush=True,
                )
    results["summary"] = summarize(results["rounds"])
    results["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results["summary"]))
    return 0


def instructions(target: str, decisions: int) -> int:
    """One engine's decisions alone, the timed part inside ``functools.reduce`` so that callgrind counts only
    it (instruction counts repeat exactly on a loaded machine, unlike time): compare Ir / decisions."""
    name, _, label = target.partition(":")
    if label == "default":
        ruleset = policy.load_default_ruleset()
    else:
        ruleset = policy.load_ruleset(generated_ruleset_source(500), "generated-500.yaml")
    facts, warmup = _facts(42, decisions), _facts(7, 300)
    if name == "bookbag":
        engine = policy.PolicyEngine()
        fn: Callable[[dict[str, Any]], Any] = lambda f: engine.decide(ruleset, f)  # noqa: E731
    else:
        fn = ZenTable(ruleset, name.removeprefix("zen_")).decide
    for item in warmup:
        fn(item)
    functools.reduce(lambda _, f: fn(f), facts, None)
    print(f"{target}: {decisions} decisions", flush=True)
    return 0


def _facts(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [random_facts(rng) for _ in range(count)]


def summarize(rounds: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """Medians over rounds; ratios are Bookbag's decisions/s over the other engine's, paired by round (a
    batch against ``decide_many``, one call per decision against ``decide``)."""
    summary: dict[str, Any] = {}
    for label, engines in rounds.items():
        for name, ms in engines.items():
            batched = name in ("bookbag_decide_many", "zen_collect_batch")
            bookbag = engines["bookbag_decide_many" if batched else "bookbag"]
            ratios = [b["decisions_per_s"] / m["decisions_per_s"] for b, m in zip(bookbag, ms, strict=True)]
            summary.setdefault(label, {})[name] = {
                "decisions_per_s": round(statistics.median(m["decisions_per_s"] for m in ms)),
                "decisions_per_s_rounds": [round(m["decisions_per_s"]) for m in ms],
                "decisions_per_cpu_s": round(statistics.median(m["decisions_per_cpu_s"] for m in ms)),
                "p50_us": round(statistics.median(m["p50_us"] for m in ms), 1),
                "p99_us": round(statistics.median(m["p99_us"] for m in ms), 1),
                "bookbag_over_this": round(statistics.median(ratios), 2),
            }
    if "default" in summary and "generated_500" in summary:
        default, big = summary["default"]["bookbag"], summary["generated_500"]["bookbag"]
        summary["generated_500_over_default"] = round(big["decisions_per_s"] / default["decisions_per_s"], 2)
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| ruleset | engine | decisions/s (rounds) | per CPU-s | p50 µs | p99 µs | Bookbag ÷ this |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, engines in summary.items():
        if not isinstance(engines, dict):
            continue
        for name, s in engines.items():
            rounds = " / ".join(f"{x:,}" for x in s["decisions_per_s_rounds"])
            lines.append(
                f"| {label} | {name} | {s['decisions_per_s']:,} ({rounds}) | {s['decisions_per_cpu_s']:,} | "
                f"{s['p50_us']} | {s['p99_us']} | {s['bookbag_over_this']} |"
            )
    if "generated_500_over_default" in summary:
        lines.append(f"\nBookbag generated_500 ÷ default: {summary['generated_500_over_default']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
