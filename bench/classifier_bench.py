"""Classifier benchmark: LightGBM (stacked) vs a TF-IDF + logistic-regression baseline, side by side.

Quality on the shared Bitext set (stratified 80/20 split) and on the seed set's hold-out (hand-written items never
trained on), cross-domain transfer both ways, training time on all 26,872 Bitext tickets on one core, and
single-ticket latency / batch throughput of the shipped default model. Prints the figures and writes
bench/results/classifier_bench.json.

    .venv/bin/python bench/classifier_bench.py [--skip-cross] [--out bench/results/classifier_bench.json]
    .venv/bin/python bench/classifier_bench.py --select   # the model-selection runs (training rows only)
    .venv/bin/python bench/classifier_bench.py --compare 1ea0b1c   # old (REF) vs this tree, interleaved
    .venv/bin/python bench/classifier_bench.py --reliability-png docs/classifier_reliability.png

`--compare REF` measures the shipped model of git revision REF against this tree's in one run, each side in its
own process (bench/classifier_compare.py) and interleaved: category/priority macro-F1, ECE and per-language F1 on
the fresh hand-written hold-out (bench/data/fresh_holdout.txt, written before any tuning, never trained on) and
on this tree's seed hold-out, single-ticket latency on the same texts, and training time of each side's default
configuration on its own seed set. Writes bench/results/classifier_compare.json.

`--select` reproduces how the training configuration was chosen: cross-validation on training rows only (3-fold
stratified on the Bitext training split, 4-fold grouped by hand-written item on the seed training rows), never on
the Bitext test split or the seed hold-out.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from classifier import Classifier, LabelledTicket, TicketInput, TrainConfig, default_model_dir, evaluate, fit
from classifier.default import load_seed
from classifier.features import normalize_text
from classifier.metrics import classification_metrics
from classifier.seed.compose import HOLDOUT_FILE, TRAIN_FILE
from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES

REPO = Path(__file__).resolve().parent.parent
BITEXT = REPO.parent / "shared" / "datasets" / "bitext-customer-support"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_bitext() -> list[LabelledTicket] | None:
    if not (BITEXT / "bitext_27k.csv").is_file():
        return None
    mapping = json.loads((BITEXT / "intent_to_category.json").read_text())
    with (BITEXT / "bitext_27k.csv").open(encoding="utf-8") as handle:
        return [
            LabelledTicket(TicketInput(body=r["text"]), mapping[r["category"]])
            for r in csv.DictReader(handle)
        ]


def baseline(texts: Sequence[str], labels: Sequence[str]) -> Pipeline:
    """The issue's reference point: TF-IDF word 1-2 + char 2-5 grams, multinomial logistic regression."""
    features = make_union(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
        TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2),
    )
    return make_pipeline(features, LogisticRegression(C=10, max_iter=1000)).fit(texts, labels)


def texts_of(rows: Sequence[LabelledTicket]) -> list[str]:
    return [normalize_text(r.ticket.clean_text) for r in rows]


def compare(
    name: str,
    train_rows: list[LabelledTicket],
    test_rows: list[LabelledTicket],
    *,
    priority: bool,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    labels = list(labels or sorted({r.category for r in train_rows} | {r.category for r in test_rows}))
    say(f"[{name}] LightGBM on {len(train_rows)} rows")
    started = time.perf_counter()
    model = fit(train_rows, labels=labels, priorities=DEFAULT_PRIORITIES if priority else None)
    lgb_seconds = time.perf_counter() - started
    report = evaluate(model.classifier(), test_rows)
    say(f"[{name}] baseline on {len(train_rows)} rows")
    started = time.perf_counter()
    base = baseline(texts_of(train_rows), [r.category for r in train_rows])
    base_seconds = time.perf_counter() - started
    test_texts = texts_of(test_rows)
    base_cat = classification_metrics([r.category for r in test_rows], list(base.predict(test_texts)), labels)
    out: dict[str, Any] = {
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "lightgbm": {
            "category_macro_f1": report.category["macro_f1"],
            "train_seconds": round(lgb_seconds, 1),
        },
        "baseline": {"category_macro_f1": base_cat["macro_f1"], "train_seconds": round(base_seconds, 1)},
        "lightgbm_per_class_f1": {k: v["f1"] for k, v in report.category["per_class"].items()},
    }
    if priority and report.priority is not None:
        out["lightgbm"]["priority_macro_f1"] = report.priority["macro_f1"]
        base_pri = baseline(texts_of(train_rows), [r.priority or "" for r in train_rows])
        truth = [r.priority or "" for r in test_rows]
        out["baseline"]["priority_macro_f1"] = classification_metrics(
            truth, list(base_pri.predict(test_texts)), DEFAULT_PRIORITIES
        )["macro_f1"]
    return out


def cross(train_rows: list[LabelledTicket], test_rows: list[LabelledTicket]) -> dict[str, float]:
    labels = sorted({r.category for r in train_rows} | {r.category for r in test_rows})
    model = fit(train_rows, labels=labels)
    lgb_f1 = evaluate(model.classifier(), test_rows).category["macro_f1"]
    base = baseline(texts_of(train_rows), [r.category for r in train_rows])
    truth = [r.category for r in test_rows]
    base_f1 = classification_metrics(truth, list(base.predict(texts_of(test_rows))), labels)["macro_f1"]
    return {"lightgbm_category_macro_f1": lgb_f1, "baseline_category_macro_f1": base_f1}


def speed(model_dir: Path, tickets: list[TicketInput]) -> dict[str, float]:
    """Single-ticket latency and batch throughput (batches of 500). The featurizer remembers each word's char
    n-grams, so throughput is measured twice: a freshly loaded model's one pass over distinct texts (every word
    new to it), and a warmed model over the texts repeated to 2,000."""
    cold = Classifier.load(model_dir)
    distinct = tickets[:2000]
    started = time.perf_counter()
    for i in range(0, len(distinct), 500):
        cold.predict_batch(distinct[i : i + 500])
    cold_per_second = len(distinct) / (time.perf_counter() - started)
    model = Classifier.load(model_dir)
    for t in tickets[:50]:
        model.predict(t)
    timings = []
    for t in tickets[:1000]:
        started = time.perf_counter()
        model.predict(t)
        timings.append((time.perf_counter() - started) * 1000)
    batch = (tickets * (2000 // len(tickets) + 1))[:2000]
    started = time.perf_counter()
    for i in range(0, len(batch), 500):
        model.predict_batch(batch[i : i + 500])
    per_second = len(batch) / (time.perf_counter() - started)
    timings.sort()
    return {
        "single_p50_ms": round(statistics.median(timings), 3),
        "single_p95_ms": round(timings[int(len(timings) * 0.95)], 3),
        "batch_tickets_per_s": round(per_second),
        "batch_cold_tickets_per_s": round(cold_per_second),
        "mean_chars": round(statistics.mean(len(t.text) for t in tickets)),
    }


# Candidates compared by `--select`; the last one is TrainConfig's default.
CANDIDATES: dict[str, TrainConfig] = {
    "boosters from scratch, char 3-5 (previous default)": TrainConfig(
        boost_from_linear=(), char_ngram_range=(3, 5)
    ),
    "category from linear, char 3-5": TrainConfig(boost_from_linear=("category",), char_ngram_range=(3, 5)),
    "both from linear, char 2-5": TrainConfig(
        boost_from_linear=("category", "priority"), char_ngram_range=(2, 5)
    ),
    "boosters from scratch, char 2-5": TrainConfig(boost_from_linear=(), char_ngram_range=(2, 5)),
    "category from linear, char 2-5 (default)": TrainConfig(),
}


def select(seed_train: list[LabelledTicket], bitext_train: list[LabelledTicket] | None) -> dict[str, Any]:
    """Cross-validated figures of each candidate configuration, on training rows only."""
    out: dict[str, Any] = {}
    y = [r.category for r in seed_train]
    groups = [r.group for r in seed_train]
    seed_folds = list(StratifiedGroupKFold(4, shuffle=True, random_state=7).split(y, y, groups))
    base_f1: dict[str, list[float]] = {"category": [], "priority": []}
    for fit_idx, held_idx in seed_folds:
        say("[select] seed grouped CV: baseline")
        fit_rows, held = [seed_train[i] for i in fit_idx], [seed_train[i] for i in held_idx]
        for task, task_labels in (("category", DEFAULT_CATEGORIES), ("priority", DEFAULT_PRIORITIES)):
            base = baseline(texts_of(fit_rows), [getattr(r, task) or "" for r in fit_rows])
            truth = [getattr(r, task) or "" for r in held]
            predicted = list(base.predict(texts_of(held)))
            base_f1[task].append(classification_metrics(truth, predicted, task_labels)["macro_f1"])
    seed_cv: dict[str, dict[str, float]] = {
        "baseline": {f"{task}_macro_f1": round(statistics.mean(v), 4) for task, v in base_f1.items()}
    }
    out["seed_grouped_cv"] = seed_cv
    for name, config in CANDIDATES.items():
        say(f"[select] seed grouped CV: {name}")
        cat: list[float] = []
        pri: list[float] = []
        for fit_idx, held_idx in seed_folds:
            model = fit(
                [seed_train[i] for i in fit_idx],
                config,
                labels=DEFAULT_CATEGORIES,
                priorities=DEFAULT_PRIORITIES,
            )
            report = evaluate(model.classifier(), [seed_train[i] for i in held_idx])
            cat.append(report.category["macro_f1"])
            pri.append(report.priority["macro_f1"] if report.priority else 0.0)
        seed_cv[name] = {
            "category_macro_f1": round(statistics.mean(cat), 4),
            "priority_macro_f1": round(statistics.mean(pri), 4),
        }
    if bitext_train is None:
        return out
    y = [r.category for r in bitext_train]
    bitext_labels = sorted(set(y))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=1).split(y, y))
    scores: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for fit_idx, held_idx in folds:
        fit_rows = [bitext_train[i] for i in fit_idx]
        held = [bitext_train[i] for i in held_idx]
        truth = [r.category for r in held]
        say("[select] bitext CV fold: baseline")
        base = baseline(texts_of(fit_rows), [r.category for r in fit_rows])
        predicted = list(base.predict(texts_of(held)))
        scores.setdefault("baseline", []).append(
            classification_metrics(truth, predicted, bitext_labels)["macro_f1"]
        )
        errors["baseline"] = errors.get("baseline", 0) + sum(
            a != b for a, b in zip(truth, predicted, strict=True)
        )
        for name, config in CANDIDATES.items():
            say(f"[select] bitext CV fold: {name}")
            classifier = fit(fit_rows, config, labels=bitext_labels).classifier()
            predicted = [p.raw_category for p in classifier.predict_batch([r.ticket for r in held])]
            scores.setdefault(name, []).append(
                classification_metrics(truth, predicted, bitext_labels)["macro_f1"]
            )
            errors[name] = errors.get(name, 0) + sum(a != b for a, b in zip(truth, predicted, strict=True))
    out["bitext_train_split_3fold_cv"] = {
        name: {"category_macro_f1": round(statistics.mean(v), 5), "errors": errors[name], "rows": len(y)}
        for name, v in scores.items()
    }
    return out


FRESH_HOLDOUT = REPO / "bench" / "data" / "fresh_holdout.txt"


def fresh_rows() -> list[dict[str, Any]]:
    from classifier.seed.items import parse_messages

    return [
        {
            "subject": m.subject,
            "body": m.body,
            "channel": m.channel,
            "category": m.category,
            "priority": m.priority,
            "language": m.language,
            "html": m.html,
        }
        for m in parse_messages(FRESH_HOLDOUT.read_text(encoding="utf-8"))
    ]


def compare_with(ref: str, rounds: int = 2) -> dict[str, Any]:
    """Old (git revision `ref`) against this tree, each in its own process, interleaved."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref, "classifier"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        fresh = Path(tmp) / "fresh.jsonl"
        fresh.write_text("".join(json.dumps(r) + "\n" for r in fresh_rows()), encoding="utf-8")
        seed = Path(tmp) / "seed_holdout.jsonl"
        seed.write_text(HOLDOUT_FILE.read_text(encoding="utf-8"), encoding="utf-8")
        worker = [sys.executable, str(REPO / "bench" / "classifier_compare.py")]
        quality = ["--eval", f"fresh_holdout={fresh}", "--eval", f"seed_holdout={seed}"]

        def run(tree: Path, *extra: str) -> dict[str, Any]:
            env = {**__import__("os").environ, "PYTHONPATH": str(tree)}
            out = subprocess.run([*worker, *extra], check=True, capture_output=True, text=True, env=env)
            result: dict[str, Any] = json.loads(out.stdout)
            return result

        sides = {"old": old_tree, "new": REPO}
        results: dict[str, dict[str, Any]] = {name: {} for name in sides}
        for name, tree in sides.items():
            say(f"[compare] {name}: quality")
            results[name].update(run(tree, *quality))
        latency: dict[str, list[float]] = {name: [] for name in sides}
        training: dict[str, list[float]] = {name: [] for name in sides}
        for i in range(rounds):
            for name, tree in sides.items():
                say(f"[compare] {name}: latency and training, round {i + 1}")
                one = run(tree, "--speed-texts", str(seed), "--train")
                latency[name].append(one["single_p50_ms"])
                training[name].append(one["train_seconds"])
                results[name]["train_rows"] = one["train_rows"]
        for name in sides:
            results[name]["single_p50_ms"] = round(statistics.median(latency[name]), 4)
            results[name]["single_p50_ms_runs"] = latency[name]
            results[name]["train_seconds"] = round(statistics.median(training[name]), 2)
            results[name]["train_seconds_runs"] = training[name]
    return {
        "ref": ref,
        **results,
        "ratio_new_to_old": {
            "single_p50_ms": round(results["new"]["single_p50_ms"] / results["old"]["single_p50_ms"], 3),
            "train_seconds": round(results["new"]["train_seconds"] / results["old"]["train_seconds"], 3),
        },
    }


def reliability_png(out: Path) -> dict[str, Any]:
    """The shipped model's reliability diagram (category and priority confidence) on the seed hold-out and on the
    fresh hold-out, as a PNG for the README; returns the figures drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from classifier.dataset import LabelledTicket

    model = Classifier.load(default_model_dir())
    fresh = [LabelledTicket(TicketInput.from_mapping(r), r["category"], r["priority"]) for r in fresh_rows()]
    sets = {"seed hold-out": load_seed(HOLDOUT_FILE), "fresh hold-out": fresh}
    reports = {name: evaluate(model, rows) for name, rows in sets.items()}
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2), dpi=110)
    drawn: dict[str, Any] = {}
    for ax, task in zip(axes, ("category", "priority"), strict=True):
        ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect calibration")
        for (name, report), color in zip(reports.items(), ("#1f77b4", "#d62728"), strict=True):
            summary = report.calibration[task]
            points = [r for r in summary["reliability"] if r["n"]]
            ax.plot(
                [r["confidence"] for r in points],
                [r["accuracy"] for r in points],
                marker="o",
                color=color,
                label=f"{name} (ECE {summary['ece']:.3f}, n={report.category['n']})",
            )
            drawn[f"{task} {name}"] = summary
        ax.set_title(f"{task} confidence")
        ax.set_xlabel("mean confidence in bin (10 equal-width bins)")
        ax.set_ylabel("share of answers right")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=7)
    figure.suptitle(f"Shipped classifier {model.info.version}: reliability", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, metadata={"Software": None})
    return drawn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classifier_bench.json")
    parser.add_argument("--skip-cross", action="store_true", help="skip the cross-domain runs")
    parser.add_argument(
        "--select", action="store_true", help="only the model-selection CV runs (training rows)"
    )
    parser.add_argument("--compare", metavar="REF", help="only the old (git REF) vs new comparison")
    parser.add_argument(
        "--reliability-png",
        type=Path,
        metavar="PNG",
        help="only draw the shipped model's reliability diagram",
    )
    args = parser.parse_args()
    if args.reliability_png:
        with threadpool_limits(limits=1):
            print(json.dumps(reliability_png(args.reliability_png), indent=2))
        return 0
    if args.compare:
        comparison = compare_with(args.compare)
        out = REPO / "bench" / "results" / "classifier_compare.json"
        out.write_text(json.dumps(comparison, indent=2) + "\n")
        print(json.dumps(comparison, indent=2))
        return 0
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "threads": 1,
    }
    seed_train, seed_holdout = load_seed(TRAIN_FILE), load_seed(HOLDOUT_FILE)
    bitext = load_bitext()
    if args.select:
        bitext_train = None
        if bitext is not None:
            y = [r.category for r in bitext]
            bitext_train = list(train_test_split(bitext, test_size=0.2, stratify=y, random_state=0)[0])
        with threadpool_limits(limits=1):
            selection = select(seed_train, bitext_train)
        print(json.dumps(selection, indent=2))
        return 0
    with threadpool_limits(limits=1):
        # Same labels, order and config as `build-default`: this row reproduces the shipped model's figures.
        results["seed_holdout"] = compare(
            "seed", seed_train, seed_holdout, priority=True, labels=DEFAULT_CATEGORIES
        )
        if bitext is None:
            say("bitext data absent: skipping its figures")
        else:
            y = [r.category for r in bitext]
            train_rows, test_rows = train_test_split(bitext, test_size=0.2, stratify=y, random_state=0)
            results["bitext_split"] = compare("bitext", list(train_rows), list(test_rows), priority=False)
            say("training time on all Bitext rows")
            started = time.perf_counter()
            fit(bitext)
            results["train_seconds_all_bitext"] = {
                "rows": len(bitext),
                "seconds": round(time.perf_counter() - started, 1),
            }
            if not args.skip_cross:
                say("cross-domain: seed -> bitext test split, bitext -> seed hold-out")
                results["cross_seed_to_bitext"] = cross(seed_train, list(test_rows))
                results["cross_bitext_to_seed"] = cross(list(train_rows), seed_holdout)
        shipped = Classifier.load(default_model_dir())
        results["shipped_model"] = {"version": shipped.info.version}
        results["speed_seed_holdout_texts"] = speed(default_model_dir(), [r.ticket for r in seed_holdout])
        if bitext is not None:
            results["speed_bitext_texts"] = speed(default_model_dir(), [r.ticket for r in bitext[::13]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
