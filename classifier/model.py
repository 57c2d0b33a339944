"""Serving: load a model directory once, then classify tickets one at a time or in batches (thread-safe, offline)."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp

from classifier.calibration import softmax
from classifier.features import (
    META_FEATURE_NAMES,
    STYLE_FEATURE_NAMES,
    TextFeaturizer,
    join_columns,
    metadata_features,
    style_features,
)
from classifier.linear import LinearScorer
from classifier.types import FALLBACK_CATEGORY, ClassifierError, ModelInfo, Prediction, TicketInput

MODEL_FORMAT = "bookbag-classifier/1"
MANIFEST = "manifest.json"
TEXT_FEATURES = "text_features.json"
CATEGORY_MODEL = "category.lgb.txt"
PRIORITY_MODEL = "priority.lgb.txt"
CATEGORY_LINEAR = "category.linear.npz"
PRIORITY_LINEAR = "priority.linear.npz"
# The two boosters, by the name TrainConfig.boost_from_linear and the manifest use.
BOOSTED_TASKS = ("category", "priority")
# Used when a merchant trains without priority labels: a neutral priority with zero confidence.
NO_PRIORITY = "normal"


def base_matrices(
    featurizer: TextFeaturizer, tickets: Sequence[TicketInput]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(text TF-IDF, the boosters' share of it plus tone): the linear scorers read the first, boosters the second."""
    texts = [t.clean_text for t in tickets]
    text = featurizer.transform(texts)
    tree_text = featurizer.tree_part(text)
    return text, join_columns([tree_text, style_features(texts)])


def category_matrix(base: sp.csr_matrix, category_scores: np.ndarray) -> sp.csr_matrix:
    return join_columns([base, category_scores])


def priority_matrix(
    base: sp.csr_matrix,
    tickets: Sequence[TicketInput],
    priority_scores: np.ndarray,
    category_scores: np.ndarray,
) -> sp.csr_matrix:
    return join_columns([base, metadata_features(tickets), priority_scores, category_scores])


def n_category_features(featurizer: TextFeaturizer, n_labels: int) -> int:
    return featurizer.n_tree_features + len(STYLE_FEATURE_NAMES) + n_labels


def n_priority_features(featurizer: TextFeaturizer, n_labels: int, n_priorities: int) -> int:
    tree = featurizer.n_tree_features
    return tree + len(STYLE_FEATURE_NAMES) + len(META_FEATURE_NAMES) + n_priorities + n_labels


class Classifier:
    """A loaded model: category and priority LightGBM boosters over shared text features."""

    def __init__(
        self,
        featurizer: TextFeaturizer,
        category: tuple[LinearScorer, lgb.Booster],
        priority: tuple[LinearScorer, lgb.Booster] | None,
        info: ModelInfo,
        *,
        confidence_threshold: float = 0.4,
        boost_from_linear: Collection[str] = (),
        temperatures: Mapping[str, float] | None = None,
    ) -> None:
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ClassifierError(f"confidence threshold must be within [0, 1], got {confidence_threshold}")
        self._featurizer = featurizer
        self._category = category
        self._priority = priority
        self._info = info
        self.confidence_threshold = confidence_threshold
        # Tasks trained with the linear scorer's log-probabilities as the booster's starting scores (TrainConfig).
        unknown = sorted(set(boost_from_linear) - set(BOOSTED_TASKS))
        if unknown:
            raise ClassifierError(f"boost_from_linear: unknown task(s) {', '.join(unknown)}")
        self._boost_from_linear = frozenset(boost_from_linear)
        # Calibration (classifier.calibration): each task's logits are divided by its temperature.
        self._temperatures = {task: 1.0 for task in BOOSTED_TASKS}
        for task, value in (temperatures or {}).items():
            if task not in BOOSTED_TASKS or not 0.0 < float(value) < 100.0:
                raise ClassifierError(f"bad temperature {task}={value!r}")
            self._temperatures[task] = float(value)
        # The directory it was loaded from (None: built in memory or unpacked from bytes).
        self.source_dir: Path | None = None
        # LightGBM boosters are not documented as safe for concurrent predict; one lock keeps it simple and a
        # prediction takes about a millisecond.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, *, confidence_threshold: float = 0.4) -> Classifier:
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        featurizer = TextFeaturizer.load(model_dir / TEXT_FEATURES)
        category = (_load_linear(model_dir / CATEGORY_LINEAR), _load_booster(model_dir / CATEGORY_MODEL))
        priorities = tuple(manifest.get("priorities") or ())
        priority = None
        if priorities:
            priority = (_load_linear(model_dir / PRIORITY_LINEAR), _load_booster(model_dir / PRIORITY_MODEL))
        info = ModelInfo(
            version=str(manifest["version"]),
            labels=tuple(manifest["labels"]),
            priorities=priorities,
            trained_at=str(manifest.get("trained_at", "")),
            data_hash=str(manifest.get("data_hash", "")),
            metrics=dict(manifest.get("metrics") or {}),
        )
        n_labels = len(info.labels)
        cat_linear, cat_booster = category
        if (
            cat_booster.num_feature() != n_category_features(featurizer, n_labels)
            or cat_booster.num_model_per_iteration() != n_labels
            or cat_linear.coef.shape != (n_labels, featurizer.n_features)
        ):
            raise ClassifierError(f"{model_dir}: category model does not match its manifest")
        if priority is not None and (
            priority[1].num_feature() != n_priority_features(featurizer, n_labels, len(priorities))
            or priority[0].coef.shape != (len(priorities), featurizer.n_features)
        ):
            raise ClassifierError(f"{model_dir}: priority model does not match its manifest")
        model = cls(
            featurizer,
            category,
            priority,
            info,
            confidence_threshold=confidence_threshold,
            boost_from_linear=tuple(manifest.get("boost_from_linear") or ()),
            temperatures=dict(manifest.get("temperatures") or {}),
        )
        model.source_dir = model_dir
        return model

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, ticket: TicketInput) -> Prediction:
        return self.predict_batch([ticket])[0]

    def predict_batch(self, tickets: Sequence[TicketInput]) -> list[Prediction]:
        if not tickets:
            return []
        category_proba, priority_proba = self.predict_proba(tickets)
        labels, priorities = self._info.labels, self._info.priorities
        out = []
        for i in range(len(tickets)):
            top = int(np.argmax(category_proba[i]))
            raw_label, raw_conf = labels[top], float(category_proba[i, top])
            label = raw_label if raw_conf >= self.confidence_threshold else FALLBACK_CATEGORY
            if priority_proba is None:
                priority, priority_conf = NO_PRIORITY, 0.0
            else:
                p = int(np.argmax(priority_proba[i]))
                priority, priority_conf = priorities[p], float(priority_proba[i, p])
            out.append(
                Prediction(
                    category=label,
                    category_confidence=raw_conf,
                    priority=priority,
                    priority_confidence=priority_conf,
                    model_version=self._info.version,
                    raw_category=raw_label,
                    raw_category_confidence=raw_conf,
                )
            )
        return out

    def predict_proba(self, tickets: Sequence[TicketInput]) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (columns in `info.labels` / `info.priorities` order)."""
        text, base = base_matrices(self._featurizer, tickets)
        cat_linear, cat_booster = self._category
        cat_scores = cat_linear.proba(text)
        # One thread per call: the server parallelises across requests, and OpenMP start-up would dominate a
        # single-ticket prediction.
        with self._lock:
            category = self._booster_proba(
                "category", cat_booster, category_matrix(base, cat_scores), cat_scores
            )
            priority = None
            if self._priority is not None:
                pri_linear, pri_booster = self._priority
                pri_scores = pri_linear.proba(text)
                x = priority_matrix(base, tickets, pri_scores, cat_scores)
                priority = self._booster_proba("priority", pri_booster, x, pri_scores)
        return category, priority

    def _booster_proba(
        self, task: str, booster: lgb.Booster, x: sp.csr_matrix, linear_proba: np.ndarray
    ) -> np.ndarray:
        raw = _as_proba(booster.predict(x, raw_score=True, num_threads=1))
        if task in self._boost_from_linear:
            raw = raw + log_proba(linear_proba)
        return softmax(raw, self._temperatures[task])


def log_proba(proba: np.ndarray) -> np.ndarray:
    """Log-probabilities as boosters' starting scores; clipped so a 'never' stays finite and correctable."""
    out: np.ndarray = np.log(np.clip(proba.astype(np.float64), 1e-6, 1.0))
    return out


def _as_proba(raw: Any) -> np.ndarray:
    return np.asarray(raw, dtype=np.float64).reshape(np.shape(raw)[0], -1)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / MANIFEST
    if not Path(model_dir).is_dir():
        raise ClassifierError(f"model directory {model_dir} does not exist")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ClassifierError(f"{model_dir} is not a classifier model directory (no {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
        raise ClassifierError(
            f"{path}: unsupported model format {manifest.get('format') if isinstance(manifest, dict) else None!r}"
        )
    for key in ("version", "labels"):
        if key not in manifest:
            raise ClassifierError(f"{path}: missing {key!r}")
    return manifest


def _load_linear(path: Path) -> LinearScorer:
    if not path.is_file():
        raise ClassifierError(f"missing model file {path}")
    return LinearScorer.load(path)


def _load_booster(path: Path) -> lgb.Booster:
    if not path.is_file():
        raise ClassifierError(f"missing model file {path}")
    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise ClassifierError(f"corrupt model file {path}: {exc}") from exc
