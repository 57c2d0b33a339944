"""The pieces of a merchant's learning loop that need no database: the split by time, the safety gate, packed
models and the LRU of loaded models."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from classifier import Classifier, ClassifierError
from classifier.candidates import (
    Correction,
    GateMargins,
    LearningConfig,
    ModelCache,
    gate,
    load_packed,
    pack_model,
    seed_rows,
    split_by_time,
)
from classifier.dataset import LabelledTicket
from classifier.types import TicketInput

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def correction(n: int, minutes: int) -> Correction:
    row = LabelledTicket(TicketInput(subject=f"ticket {n}", body="text"), "invoice", "low")
    return Correction(f"tkt_{n:02d}", T0 + timedelta(minutes=minutes), row)


def test_the_newest_corrections_are_held_out() -> None:
    # Given out of time order: the split goes by when each ticket was corrected, not by arrival.
    items = [correction(n, minutes) for n, minutes in enumerate([5, 1, 9, 3, 7, 0, 8, 2, 6, 4])]
    train, held = split_by_time(items, LearningConfig())
    assert [c.corrected_at for c in held] == [
        T0 + timedelta(minutes=m) for m in (7, 8, 9)
    ]  # ceil(25 % of 10)
    assert max(c.corrected_at for c in train) < min(c.corrected_at for c in held)
    assert len(train) + len(held) == 10
    few, none = split_by_time(items[:3], LearningConfig())  # fewer than 2 × min_holdout: nothing held out
    assert len(few) == 3 and none == []


def figures(macro_f1: float, accuracy: float, ece: float, priority: float | None = None) -> dict[str, Any]:
    return {
        "macro_f1": macro_f1,
        "accuracy": accuracy,
        "ece": ece,
        "priority_macro_f1": priority,
        "priority_accuracy": priority,
        "priority_ece": 0.05 if priority is not None else None,
    }


def report(
    merchant: tuple[dict[str, Any], dict[str, Any]] | None, seed: tuple[dict[str, Any], dict[str, Any]]
) -> dict[str, Any]:
    def side(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        return {"rows": 10, "active": pair[0], "candidate": pair[1]}

    return {"slices": {"merchant": side(merchant) if merchant else None, "seed": side(seed)}}


def test_the_gate_passes_within_the_margins_and_names_every_figure_beyond_them() -> None:
    margins = GateMargins(macro_f1=0.02, accuracy=0.03, ece=0.03)
    same = figures(0.90, 0.92, 0.04, 0.80)
    slightly = figures(0.885, 0.895, 0.065, 0.79)  # each loss within its margin
    assert gate(report((same, slightly), (same, slightly)), margins) == {
        "passed": True,
        "reasons": [],
        "margins": {"macro_f1": 0.02, "accuracy": 0.03, "ece": 0.03},
    }
    better_here_worse_there = report(
        (figures(0.5, 0.5, 0.2), figures(0.9, 0.9, 0.05)), (same, figures(0.85, 0.92, 0.04, 0.80))
    )
    verdict = gate(better_here_worse_there, margins)
    assert verdict["passed"] is False
    assert verdict["reasons"] == [
        "category macro-f1 on the seed hold-out: 0.850 vs 0.900 (worse by 0.050, more than the margin 0.020)"
    ]
    overconfident = gate(report(None, (same, figures(0.90, 0.92, 0.10, 0.70))), margins)
    assert [r.split(":")[0] for r in overconfident["reasons"]] == [
        "category ece on the seed hold-out",
        "priority macro-f1 on the seed hold-out",
        "priority accuracy on the seed hold-out",
    ]
    assert gate(report(None, (same, figures(0.0, 0.0, 1.0))), GateMargins(1.0, 1.0, 1.0))["passed"] is True


def test_a_packed_model_predicts_as_the_directory_does(small_model: Path) -> None:
    packed = pack_model(small_model)
    loaded, original = load_packed(packed), Classifier.load(small_model)
    tickets = [
        TicketInput(subject="Cancel", body="please cancel my order 123"),
        TicketInput(body="invoice please"),
    ]
    assert loaded.predict_batch(tickets) == original.predict_batch(tickets)
    assert loaded.info.version == original.info.version


def test_a_corrupt_or_foreign_package_is_refused(small_model: Path) -> None:
    with pytest.raises(ClassifierError, match="corrupt packed model"):
        load_packed(b"not a zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", "{}")
        archive.writestr("../escape.txt", "x")
    with pytest.raises(ClassifierError, match="unexpected files"):
        load_packed(buffer.getvalue())
    truncated = pack_model(small_model)[:-200]
    with pytest.raises(ClassifierError):
        load_packed(truncated)


def test_the_model_cache_keeps_the_most_recently_used(small_model: Path) -> None:
    model = Classifier.load(small_model)
    loaded: list[str] = []

    def loader(key: str) -> Any:
        def load() -> Classifier:
            loaded.append(key)
            return model

        return load

    cache = ModelCache(2)
    for key in ("a", "b", "a", "c"):  # touching "a" makes "b" the least recently used
        cache.get(key, loader(key))
    assert loaded == ["a", "b", "c"] and sorted(cache.keys()) == ["a", "c"]
    cache.get("b", loader("b"))
    assert loaded == ["a", "b", "c", "b"] and sorted(cache.keys()) == ["b", "c"] and len(cache) == 2
    with pytest.raises(ClassifierError):
        ModelCache(0)


def test_a_capped_seed_sample_keeps_whole_scenarios_and_is_repeatable() -> None:
    sample = seed_rows(holdout=False, cap=400)
    assert len(sample) == 400 and sample == seed_rows(holdout=False, cap=400)
    every = seed_rows(holdout=False, cap=None)
    groups = {r.group for r in sample}
    complete = [g for g in groups if sum(r.group == g for r in sample) == sum(r.group == g for r in every)]
    assert len(complete) >= len(groups) - 1  # only the last scenario drawn may be cut by the cap
    assert len({r.category for r in sample}) == 11
