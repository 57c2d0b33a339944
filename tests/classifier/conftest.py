"""Shared fixtures: a small labelled sample of the seed set and a model trained on it once per session."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from classifier import Classifier, TrainConfig, train
from classifier.default import load_seed
from classifier.seed.compose import TRAIN_FILE

SMALL_CATEGORIES = ("cancel_order", "invoice", "account", "product_question")
FAST = TrainConfig(max_word_features=1500, max_char_features=3000, max_tree_features=500, max_rounds=40)


def small_rows() -> list[dict[str, Any]]:
    """Up to 60 seed rows for each of four categories (rows of one item stay together)."""
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    with TRAIN_FILE.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["category"] in SMALL_CATEGORIES and counts.get(row["category"], 0) < 60:
                counts[row["category"]] = counts.get(row["category"], 0) + 1
                out.append(row)
    return out


@pytest.fixture(scope="session")
def small_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in small_rows()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same rows under a merchant's own column names and label spellings."""
    path = tmp_path_factory.mktemp("data") / "history.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message", "intent", "urgency", "channel"])
        for r in small_rows():
            writer.writerow(
                [f"{r['subject']}\n{r['body']}", r["category"].upper(), r["priority"], r["channel"]]
            )
    return path


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "small"
    rows = load_seed_small(tmp_path_factory.mktemp("seed"))
    train(rows, out, version="test-small", config=FAST)
    return out


def load_seed_small(tmp: Path) -> Any:
    path = tmp / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in small_rows()), encoding="utf-8")
    return load_seed(path)


@pytest.fixture(scope="session")
def shipped() -> Classifier:
    from classifier import default_model_dir

    return Classifier.load(default_model_dir())
