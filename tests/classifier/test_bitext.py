"""The pipeline on the shared public Bitext set (skipped when ../shared is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sklearn.model_selection import train_test_split

from classifier import LabelledTicket, TicketInput, evaluate, fit

from .conftest import FAST

BITEXT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "bitext-customer-support"


@pytest.fixture(scope="module")
def bitext_sample() -> list[LabelledTicket]:
    if not (BITEXT / "bitext_27k.csv").is_file():
        pytest.skip("shared Bitext data not present")
    mapping = json.loads((BITEXT / "intent_to_category.json").read_text())
    with (BITEXT / "bitext_27k.csv").open(encoding="utf-8") as handle:
        rows = [
            LabelledTicket(TicketInput(body=r["text"]), mapping[r["category"]])
            for r in csv.DictReader(handle)
        ]
    return rows[::10]  # every tenth row: about 2,700, all 27 intents


def test_learns_bitext_categories_on_a_stratified_split(bitext_sample: list[LabelledTicket]) -> None:
    y = [r.category for r in bitext_sample]
    train_rows, test_rows = train_test_split(bitext_sample, test_size=0.25, stratify=y, random_state=0)
    model = fit(list(train_rows), FAST).classifier()
    report = evaluate(model, list(test_rows))
    assert report.category["macro_f1"] > 0.85
    assert report.priority is None  # Bitext has no priority labels


def test_shipped_model_transfers_to_bitext_better_than_chance(bitext_sample: list[LabelledTicket]) -> None:
    from classifier import Classifier, default_model_dir

    report = evaluate(Classifier.load(default_model_dir()), bitext_sample)
    assert report.category["macro_f1"] > 1 / 11 * 2
