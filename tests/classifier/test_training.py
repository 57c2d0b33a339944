"""Training, saving, loading and evaluating on small data; clear errors for bad model directories and data."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from classifier import Classifier, ClassifierError, LabelledTicket, TicketInput, evaluate, fit
from classifier.dataset import check_trainable, load_labelled
from classifier.model import CATEGORY_MODEL, MANIFEST, TEXT_FEATURES

from .conftest import FAST, SMALL_CATEGORIES


def test_trained_model_records_what_it_is(small_model: Path) -> None:
    model = Classifier.load(small_model)
    info = model.info
    assert info.version == "test-small"
    assert set(info.labels) == set(SMALL_CATEGORIES)
    assert info.priorities and len(info.data_hash) == 64 and info.trained_at
    holdout = info.metrics["holdout"]["category"]
    assert 0.0 <= holdout["macro_f1"] <= 1.0 and holdout["n"] > 0
    manifest = json.loads((small_model / MANIFEST).read_text())
    assert manifest["format"] == "bookbag-classifier/1"


def test_small_model_separates_its_labels(small_model: Path) -> None:
    model = Classifier.load(small_model)
    p = model.predict(
        TicketInput(subject="Invoice please", body="Can you send me a VAT invoice for my order?")
    )
    assert p.raw_category == "invoice"
    p = model.predict(TicketInput(body="I forgot my password and can't log in to my account"))
    assert p.raw_category == "account"


def test_threshold_turns_unsure_answers_into_other(small_model: Path) -> None:
    strict = Classifier.load(small_model, confidence_threshold=1.0)
    p = strict.predict(TicketInput(body="please cancel my order"))
    assert p.category == "other" and p.raw_category in SMALL_CATEGORIES
    assert p.category_confidence == p.raw_category_confidence < 1.0
    with pytest.raises(ClassifierError):
        Classifier.load(small_model, confidence_threshold=1.5)


def test_batch_equals_single_and_threads_agree(small_model: Path) -> None:
    model = Classifier.load(small_model)
    tickets = [
        TicketInput(body=f"{text} {i}") for i, text in enumerate(["cancel it", "invoice", "size?"] * 10)
    ]
    batch = model.predict_batch(tickets)
    assert batch == [model.predict(t) for t in tickets]
    results: dict[int, list[object]] = {}

    def work(k: int) -> None:
        results[k] = [model.predict(t) for t in tickets]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == batch for r in results.values())
    assert model.predict_batch([]) == []


def test_evaluate_reports_per_class_and_confusion(small_model: Path, small_jsonl: Path) -> None:
    model = Classifier.load(small_model)
    rows = load_labelled([small_jsonl], priority_col="priority")
    report = evaluate(model, rows)
    assert report.category["n"] == len(rows)
    assert set(report.category["per_class"]) == set(model.info.labels)
    assert sum(map(sum, report.category["confusion"])) == len(rows)
    assert report.priority is not None


def test_evaluate_scores_unknown_labels_as_misses(small_model: Path) -> None:
    model = Classifier.load(small_model)
    rows = [
        LabelledTicket(TicketInput(body="hello, where is my refund"), "refund_return", "normal"),
        LabelledTicket(TicketInput(body="please send the VAT invoice for my order"), "invoice", "rush"),
    ]
    report = evaluate(model, rows)
    assert report.unknown_labels == ("refund_return", "rush")
    assert report.category["per_class"]["refund_return"]["recall"] == 0.0
    assert report.category["labels"][-1] == "refund_return"
    assert report.priority is not None and report.priority["per_class"]["rush"]["support"] == 1
    assert set(report.calibration) == {"category", "priority"}
    with pytest.raises(ClassifierError, match="no evaluation rows"):
        evaluate(model, [])


def test_fit_without_priority_answers_neutral_priority() -> None:
    rows = [
        LabelledTicket(TicketInput(body=f"{w} number {i}"), w) for i in range(12) for w in ("alpha", "beta")
    ]
    model = fit(rows, FAST).classifier()
    p = model.predict(TicketInput(body="alpha number 99"))
    assert p.raw_category == "alpha" and p.priority == "normal" and p.priority_confidence == 0.0


def test_untrainable_data_is_refused() -> None:
    one = [LabelledTicket(TicketInput(body="x"), "a")] * 5
    with pytest.raises(ClassifierError, match="two distinct labels"):
        check_trainable(one)
    rare = [*one, LabelledTicket(TicketInput(body="y"), "b")]
    with pytest.raises(ClassifierError, match="fewer than 2"):
        check_trainable(rare)


@pytest.mark.parametrize(
    "damage", ["missing_dir", "no_manifest", "bad_manifest", "bad_booster", "bad_features"]
)
def test_broken_model_dirs_raise_classifier_error(small_model: Path, tmp_path: Path, damage: str) -> None:
    target = tmp_path / "m"
    if damage != "missing_dir":
        shutil.copytree(small_model, target)
    if damage == "no_manifest":
        (target / MANIFEST).unlink()
    elif damage == "bad_manifest":
        (target / MANIFEST).write_text("{not json")
    elif damage == "bad_booster":
        (target / CATEGORY_MODEL).write_text("garbage")
    elif damage == "bad_features":
        (target / TEXT_FEATURES).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ClassifierError):
        Classifier.load(target)


def test_grouped_split_keeps_variants_of_one_item_together(small_jsonl: Path) -> None:
    from classifier.dataset import stratified_split

    rows = load_labelled([small_jsonl], priority_col="priority", group_col="source")
    train_idx, test_idx = stratified_split(rows, 0.2, seed=0)
    assert test_idx and not {rows[i].group for i in train_idx} & {rows[i].group for i in test_idx}
    assert {rows[i].category for i in test_idx} == set(SMALL_CATEGORIES)


def test_boosting_from_the_linear_scorer_survives_save_and_load(tmp_path: Path) -> None:
    from dataclasses import replace

    from .conftest import load_seed_small

    rows = load_seed_small(tmp_path)
    config = replace(FAST, boost_from_linear=("category", "priority"), char_ngram_range=(2, 5))
    trained = fit(rows, config)
    trained.save(tmp_path / "model", version=None, data_hash="", metrics={}, extra={})
    manifest = json.loads((tmp_path / "model" / MANIFEST).read_text())
    features = json.loads((tmp_path / "model" / TEXT_FEATURES).read_text())
    assert manifest["boost_from_linear"] == ["category", "priority"]
    assert features["char_wb"]["ngram_range"] == [2, 5]
    assert any(len(g) == 2 for g in features["char_wb"]["vocab"])
    loaded = Classifier.load(tmp_path / "model")
    in_memory = trained.classifier()
    tickets = [r.ticket for r in rows[:40]]
    for a, b in zip(loaded.predict_proba(tickets), in_memory.predict_proba(tickets), strict=True):
        assert a is not None and b is not None
        assert abs(a - b).max() < 1e-5
        assert abs(a.sum(axis=1) - 1.0).max() < 1e-6
    # The same boosters read as plain probabilities (flag off) give different answers: the flag is load-bearing.
    plain = Classifier(
        loaded._featurizer, loaded._category, loaded._priority, loaded.info, boost_from_linear=()
    )
    for a, b in zip(plain.predict_proba(tickets), loaded.predict_proba(tickets), strict=True):
        assert a is not None and b is not None and abs(a - b).max() > 1e-3
    with pytest.raises(ClassifierError):
        fit(rows, replace(FAST, boost_from_linear=("categroy",)))
    assert evaluate(loaded, rows).category["macro_f1"] > 0.9


def test_temperatures_are_saved_loaded_and_soften_without_changing_answers(small_model: Path) -> None:
    manifest = json.loads((small_model / "manifest.json").read_text())
    assert set(manifest["temperatures"]) == {"category", "priority"}
    assert all(0.2 <= t <= 5.0 for t in manifest["temperatures"].values())
    model = Classifier.load(small_model)
    tickets = [TicketInput(body="please cancel my order"), TicketInput(body="I need an invoice with VAT")]
    base = model.predict_batch(tickets)
    hotter = Classifier(
        model._featurizer,
        model._category,
        model._priority,
        model.info,
        boost_from_linear=model._boost_from_linear,
        temperatures={"category": 3.0, "priority": 3.0},
    ).predict_batch(tickets)
    for a, b in zip(base, hotter, strict=True):
        assert a.raw_category == b.raw_category and a.priority == b.priority
        assert b.raw_category_confidence < a.raw_category_confidence
    with pytest.raises(ClassifierError, match="temperature"):
        Classifier(model._featurizer, model._category, None, model.info, temperatures={"category": 0.0})
