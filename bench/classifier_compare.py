"""One side of the old-vs-new classifier comparison (`bench/classifier_bench.py --compare REF`).

Run with a source tree's `classifier/` package first on the path (the tree of REF, or this one): loads that
tree's shipped model, scores the given evaluation files (JSONL rows with subject, body, category, priority and
optionally language/html), measures single-ticket latency on the given texts and, with --train, times training
on that tree's own seed set with its default configuration. Uses only the API both versions share, and prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]


def _ece(confidence: list[float], correct: list[bool], bins: int = 10) -> float:
    conf, hit = np.asarray(confidence), np.asarray(correct, dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    return round(
        float(
            sum(
                abs(hit[index == b].mean() - conf[index == b].mean()) * (index == b).sum()
                for b in range(bins)
                if (index == b).any()
            )
            / len(conf)
        ),
        4,
    )


def _macro(truth: list[str], predicted: list[str]) -> float:
    labels = sorted(set(truth))
    return round(float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4)


def score(model: Any, ticket_cls: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    predictions = model.predict_batch([ticket_cls.from_mapping(r) for r in rows])
    cat_truth = [r["category"] for r in rows]
    cat_pred = [p.raw_category for p in predictions]
    pri_truth = [r["priority"] for r in rows]
    pri_pred = [p.priority for p in predictions]
    out: dict[str, Any] = {
        "n": len(rows),
        "category_macro_f1": _macro(cat_truth, cat_pred),
        "priority_macro_f1": _macro(pri_truth, pri_pred),
        "category_ece": _ece(
            [p.raw_category_confidence for p in predictions],
            [a == b for a, b in zip(cat_truth, cat_pred, strict=True)],
        ),
        "priority_ece": _ece(
            [p.priority_confidence for p in predictions],
            [a == b for a, b in zip(pri_truth, pri_pred, strict=True)],
        ),
        "category_f1_per_class": dict(
            zip(
                sorted(set(cat_truth)),
                [
                    round(float(v), 4)
                    for v in f1_score(
                        cat_truth, cat_pred, labels=sorted(set(cat_truth)), average=None, zero_division=0
                    )
                ],
                strict=True,
            )
        ),
    }
    for key in ("language", "html"):
        if all(key in r for r in rows):
            groups: dict[str, list[int]] = {}
            for i, r in enumerate(rows):
                groups.setdefault(str(r[key]).lower(), []).append(i)
            out[f"category_macro_f1_by_{key}"] = {
                g: {
                    "n": len(ix),
                    "macro_f1": _macro([cat_truth[i] for i in ix], [cat_pred[i] for i in ix]),
                    "accuracy": round(sum(cat_truth[i] == cat_pred[i] for i in ix) / len(ix), 4),
                }
                for g, ix in sorted(groups.items())
            }
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", action="append", default=[], help="NAME=FILE.jsonl")
    parser.add_argument("--speed-texts", type=Path)
    parser.add_argument("--train", action="store_true")
    args = parser.parse_args()
    from classifier import Classifier, TicketInput, default_model_dir, fit
    from classifier.default import load_seed
    from classifier.seed.compose import TRAIN_FILE
    from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES

    result: dict[str, Any] = {}
    with threadpool_limits(limits=1):
        model = Classifier.load(default_model_dir())
        result["version"] = model.info.version
        for spec in args.eval:
            name, _, path = spec.partition("=")
            rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
            result[name] = score(model, TicketInput, rows)
        if args.speed_texts:
            rows = [json.loads(line) for line in args.speed_texts.read_text(encoding="utf-8").splitlines()]
            tickets = [TicketInput.from_mapping(r) for r in rows]
            for t in tickets[:50]:
                model.predict(t)
            timings = []
            for t in tickets[:1000]:
                started = time.perf_counter()
                model.predict(t)
                timings.append((time.perf_counter() - started) * 1000)
            result["single_p50_ms"] = round(statistics.median(timings), 4)
        if args.train:
            rows = load_seed(TRAIN_FILE)
            started = time.perf_counter()
            fit(rows, labels=DEFAULT_CATEGORIES, priorities=DEFAULT_PRIORITIES)
            result["train_seconds"] = round(time.perf_counter() - started, 2)
            result["train_rows"] = len(rows)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
