"""Training and evaluation: fit the shared text features and the two LightGBM boosters, save, measure."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from classifier.calibration import expected_calibration_error, fit_temperature, reliability_table
from classifier.dataset import LabelledTicket, check_trainable, data_hash, stratified_split
from classifier.features import TextFeaturizer
from classifier.linear import LinearScorer, out_of_fold_proba
from classifier.metrics import classification_metrics
from classifier.model import (
    BOOSTED_TASKS,
    CATEGORY_LINEAR,
    CATEGORY_MODEL,
    MANIFEST,
    MODEL_FORMAT,
    PRIORITY_LINEAR,
    PRIORITY_MODEL,
    TEXT_FEATURES,
    Classifier,
    base_matrices,
    category_matrix,
    log_proba,
    priority_matrix,
)
from classifier.types import ClassifierError, ModelInfo

Progress = Callable[[str], None]
# With `TrainConfig.refit` unset, boosters are refit on every row only up to this many rows: there the held-back
# validation slice is a real loss of examples and refitting is cheap.
REFIT_MAX_ROWS = 10_000


@dataclass(frozen=True)
class TrainConfig:
    max_word_features: int = 8000
    max_char_features: int = 20000
    max_tree_features: int = 28000
    min_df: int = 2
    # 2-5 rather than features.DEFAULT_CHAR_NGRAMS (3-5): chosen by cross-validation on training rows only
    # (`bench/classifier_bench.py --select`); the 2-grams keep misspelt words near their correct spelling.
    char_ngram_range: tuple[int, int] = (2, 5)
    num_leaves: int = 7
    learning_rate: float = 0.1
    max_rounds: int = 300
    early_stopping_rounds: int = 20
    # A round must improve validation log-loss by this much to count: large, easy data sets (Bitext) otherwise
    # keep shaving off crumbs of log-loss for hundreds of rounds without changing a single answer.
    min_delta: float = 1e-3
    # Share of the training rows (grouped, stratified) the boosters hold back to choose their round count.
    validation_fraction: float = 0.1
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.3
    lambda_l2: float = 1.0
    num_threads: int = 1
    # Inverse regularisation of the stacked logistic-regression scorers, and their out-of-fold count.
    linear_c: float = 10.0
    stack_folds: int = 4
    # Refit the boosters on every row after early stopping picked the round count: better on small data sets,
    # twice the time. None = only for data sets up to REFIT_MAX_ROWS rows.
    refit: bool | None = None
    # Tasks ("category", "priority") whose booster starts from its linear scorer's log-probabilities (LightGBM
    # init_score): the trees then learn corrections to the linear model instead of re-deriving it from n-grams
    # they see only a fraction of (feature_fraction). Serving adds the trees' raw scores to the same
    # log-probabilities. Chosen by the same cross-validation: category gains from it on the seed set and on
    # Bitext, priority does not.
    boost_from_linear: tuple[str, ...] = ("category",)
    # Scale each task's probabilities by a temperature fitted on the validation slice (classifier.calibration),
    # kept only where it lowers the expected calibration error there.
    calibrate: bool = True
    seed: int = 13


@dataclass
class TrainedModel:
    featurizer: TextFeaturizer
    category: tuple[LinearScorer, lgb.Booster]
    priority: tuple[LinearScorer, lgb.Booster] | None
    labels: tuple[str, ...]
    priorities: tuple[str, ...]
    rounds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    boost_from_linear: tuple[str, ...] = ()
    # Per task, the temperature its probabilities are divided by (classifier.calibration); 1.0 = as trained.
    temperatures: dict[str, float] = field(default_factory=dict)

    def classifier(self, info: ModelInfo | None = None, *, confidence_threshold: float = 0.4) -> Classifier:
        info = info or ModelInfo("unsaved", self.labels, self.priorities, "", "", {})
        return Classifier(
            self.featurizer,
            self.category,
            self.priority,
            info,
            confidence_threshold=confidence_threshold,
            boost_from_linear=self.boost_from_linear,
            temperatures=self.temperatures,
        )

    def content_hash(self) -> str:
        """Fingerprint of everything that decides a prediction (features, weights, trees, labels)."""
        digest = hashlib.sha256(json.dumps(self.featurizer.to_json(), sort_keys=True).encode())
        digest.update(json.dumps([self.labels, self.priorities]).encode())
        if self.boost_from_linear:  # only when set, so models trained without it keep their hash
            digest.update(json.dumps(["boost_from_linear", *self.boost_from_linear]).encode())
        scaled = {k: v for k, v in sorted(self.temperatures.items()) if v != 1.0}
        if scaled:  # likewise only when set
            digest.update(json.dumps(["temperatures", scaled]).encode())
        for part in (self.category, self.priority):
            if part is not None:
                digest.update(part[0].coef.tobytes() + part[0].intercept.tobytes())
                digest.update(part[1].model_to_string().encode())
        return digest.hexdigest()

    def save(
        self,
        out_dir: Path,
        *,
        version: str | None,
        data_hash: str,
        metrics: dict[str, Any],
        extra: dict[str, Any],
        version_prefix: str = "custom",
    ) -> ModelInfo:
        """Write the model directory; without an explicit version it is `<prefix>-<content hash>`, so two
        different models never share a version."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        info = ModelInfo(
            version=version or f"{version_prefix}-{self.content_hash()[:10]}",
            labels=self.labels,
            priorities=self.priorities,
            trained_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
            data_hash=data_hash,
            metrics=metrics,
        )
        self.featurizer.save(out_dir / TEXT_FEATURES)
        self.category[0].save(out_dir / CATEGORY_LINEAR)
        self.category[1].save_model(str(out_dir / CATEGORY_MODEL))
        if self.priority is not None:
            self.priority[0].save(out_dir / PRIORITY_LINEAR)
            self.priority[1].save_model(str(out_dir / PRIORITY_MODEL))
        else:
            for name in (PRIORITY_LINEAR, PRIORITY_MODEL):
                (out_dir / name).unlink(missing_ok=True)
        manifest = {"format": MODEL_FORMAT, **asdict(info), "rounds": self.rounds, **extra}
        manifest["boost_from_linear"] = list(self.boost_from_linear)
        manifest["temperatures"] = dict(self.temperatures)
        manifest["labels"], manifest["priorities"] = list(self.labels), list(self.priorities)
        (out_dir / MANIFEST).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return info


def fit(
    rows: Sequence[LabelledTicket],
    config: TrainConfig = TrainConfig(),
    *,
    labels: Sequence[str] | None = None,
    priorities: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    """Fit features and boosters on `rows`; a grouped, stratified slice of them picks the number of rounds."""
    # BLAS and OpenMP pools would otherwise take every core (and thrash on a shared machine).
    with threadpool_limits(limits=config.num_threads):
        return _fit(rows, config, labels=labels, priorities=priorities, progress=progress)


def _fit(
    rows: Sequence[LabelledTicket],
    config: TrainConfig,
    *,
    labels: Sequence[str] | None,
    priorities: Sequence[str] | None,
    progress: Progress | None,
) -> TrainedModel:
    say = progress or (lambda _msg: None)
    check_trainable(rows)
    unknown_tasks = sorted(set(config.boost_from_linear) - set(BOOSTED_TASKS))
    if unknown_tasks:
        raise ClassifierError(f"boost_from_linear: unknown task(s) {', '.join(unknown_tasks)}")
    started = time.perf_counter()
    has_priority = rows[0].priority is not None
    labels = tuple(labels) if labels else tuple(sorted({r.category for r in rows}))
    priorities = tuple(priorities) if priorities else tuple(sorted({r.priority for r in rows if r.priority}))
    say(f"building text features from {len(rows)} rows")
    label_sets: list[list[str]] = [[r.category for r in rows]]
    if has_priority:
        label_sets.append([r.priority or "" for r in rows])
    featurizer = TextFeaturizer.fit(
        [r.ticket.clean_text for r in rows],
        label_sets,
        max_word_features=config.max_word_features,
        max_char_features=config.max_char_features,
        max_tree_features=config.max_tree_features,
        min_df=config.min_df,
        char_ngram_range=config.char_ngram_range,
    )
    tickets = [r.ticket for r in rows]
    text, base = base_matrices(featurizer, tickets)
    say(
        f"{featurizer.n_features} text features ({len(featurizer.word_vocab)} word, {len(featurizer.char_vocab)} char)"
    )
    groups = [r.group or "" for r in rows] if all(r.group for r in rows) else None
    fit_idx, val_idx = _validation_split(rows, config)
    y_cat = _encode([r.category for r in rows], labels)
    say("category: linear scorer (out-of-fold)")
    cat_linear, cat_oof = _stack(text, y_cat, len(labels), groups, config)
    cat_booster, cat_rounds, cat_temperature = _boost(
        "category",
        category_matrix(base, cat_oof),
        y_cat,
        len(labels),
        fit_idx,
        val_idx,
        config,
        say,
        init_score=log_proba(cat_oof) if "category" in config.boost_from_linear else None,
    )
    priority = None
    pri_rounds = 0
    temperatures = {"category": cat_temperature}
    if has_priority:
        y_pri = _encode([r.priority or "" for r in rows], priorities)
        say("priority: linear scorer (out-of-fold)")
        pri_linear, pri_oof = _stack(text, y_pri, len(priorities), groups, config)
        x_pri = priority_matrix(base, tickets, pri_oof, cat_oof)
        pri_booster, pri_rounds, pri_temperature = _boost(
            "priority",
            x_pri,
            y_pri,
            len(priorities),
            fit_idx,
            val_idx,
            config,
            say,
            init_score=log_proba(pri_oof) if "priority" in config.boost_from_linear else None,
        )
        priority = (pri_linear, pri_booster)
        temperatures["priority"] = pri_temperature
    say(
        "calibration on the validation slice: temperature "
        + ", ".join(f"{task} {t:.3f}" for task, t in temperatures.items())
    )
    seconds = time.perf_counter() - started
    say(f"trained in {seconds:.1f}s")
    return TrainedModel(
        featurizer,
        (cat_linear, cat_booster),
        priority,
        labels,
        priorities if has_priority else (),
        rounds={"category": cat_rounds, "priority": pri_rounds},
        seconds=seconds,
        boost_from_linear=tuple(t for t in BOOSTED_TASKS if t in config.boost_from_linear),
        temperatures=temperatures if config.calibrate else {},
    )


def _validation_split(rows: Sequence[LabelledTicket], config: TrainConfig) -> tuple[list[int], list[int]]:
    if config.validation_fraction <= 0:
        return list(range(len(rows))), []
    try:
        return stratified_split(rows, config.validation_fraction, config.seed)
    except (ClassifierError, ValueError):
        return list(range(len(rows))), []  # too small to spare a validation slice: fixed rounds


def _stack(
    text: sp.csr_matrix, y: np.ndarray, n_classes: int, groups: list[str] | None, config: TrainConfig
) -> tuple[LinearScorer, np.ndarray]:
    """The serving scorer (fit on all rows) and out-of-fold scores for the booster to train on."""
    oof = out_of_fold_proba(text, y, n_classes, config.linear_c, groups, config.stack_folds, config.seed)
    return LinearScorer.fit(text, y, n_classes, config.linear_c), oof


def _encode(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise ClassifierError(f"labels not in the model's label set: {', '.join(unknown)}")
    return np.asarray([index[v] for v in values], dtype=np.int32)


def _boost(
    name: str,
    x: sp.csr_matrix,
    y: np.ndarray,
    n_classes: int,
    fit_idx: list[int],
    val_idx: list[int],
    config: TrainConfig,
    say: Progress,
    *,
    init_score: np.ndarray | None = None,
) -> tuple[lgb.Booster, int, float]:
    """The booster, its round count and the temperature fitted on the validation slice (1.0 without one)."""
    params: dict[str, Any] = {
        "objective": "multiclass",
        "num_class": n_classes,
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": config.feature_fraction,
        "lambda_l2": config.lambda_l2,
        "max_bin": 63,
        "num_threads": config.num_threads,
        "seed": config.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    clean_names = [f"f{i}" for i in range(x.shape[1])]
    rounds = config.max_rounds
    if val_idx:
        train_set = lgb.Dataset(
            x[fit_idx],
            y[fit_idx],
            init_score=None if init_score is None else init_score[fit_idx],
            feature_name=clean_names,
            free_raw_data=True,
        )
        valid_set = lgb.Dataset(
            x[val_idx],
            y[val_idx],
            init_score=None if init_score is None else init_score[val_idx],
            reference=train_set,
        )
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=config.max_rounds,
            valid_sets=[valid_set],
            callbacks=[
                lgb.early_stopping(config.early_stopping_rounds, verbose=False, min_delta=config.min_delta),
                _progress_callback(name, config.max_rounds, say),
            ],
        )
        rounds = max(int(booster.best_iteration or config.max_rounds), 10)
        logits = np.asarray(
            booster.predict(x[val_idx], raw_score=True, num_iteration=rounds), dtype=np.float64
        )
        logits = logits.reshape(len(val_idx), -1)
        if init_score is not None:
            logits = logits + init_score[val_idx]
        temperature = fit_temperature(logits, y[val_idx])
        refit = config.refit if config.refit is not None else x.shape[0] <= REFIT_MAX_ROWS
        if not refit:
            say(f"{name}: stopped at round {rounds} (validation slice)")
            return _trimmed(booster, rounds), rounds, temperature
        say(f"{name}: {rounds} rounds chosen on the validation slice; refitting on all rows")
    else:
        temperature = 1.0
    full = lgb.Dataset(x, y, init_score=init_score, feature_name=clean_names, free_raw_data=True)
    booster = lgb.train(
        params, full, num_boost_round=rounds, callbacks=[_progress_callback(name, rounds, say)]
    )
    return booster, rounds, temperature


def _trimmed(booster: lgb.Booster, rounds: int) -> lgb.Booster:
    """A booster holding only its first `rounds` iterations, so saving and predicting skip the rest."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))


def _progress_callback(name: str, total: int, say: Progress) -> Callable[[Any], None]:
    step = max(total // 5, 1)

    def report(env: Any) -> None:
        done = env.iteration + 1
        if done % step == 0 or done == total:
            say(f"{name}: round {done}/{total}")

    return report


@dataclass(frozen=True)
class EvalReport:
    category: dict[str, Any]
    priority: dict[str, Any] | None
    # Category figures after the confidence threshold turned unsure answers into "other".
    category_thresholded: dict[str, Any]
    # Per task: expected calibration error and reliability table of the top answer's confidence.
    calibration: dict[str, Any] = field(default_factory=dict)
    # Labels (and priorities) of the data the model does not know: their rows are scored as misses.
    unknown_labels: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "priority": self.priority,
            "category_thresholded": self.category_thresholded,
            "calibration": self.calibration,
            "unknown_labels": list(self.unknown_labels),
        }


def evaluate(classifier: Classifier, rows: Sequence[LabelledTicket], *, batch_size: int = 512) -> EvalReport:
    """Category (raw top label and thresholded) and priority figures of `classifier` on labelled rows, with the
    calibration of their confidences. Rows whose label the model does not know are scored as misses (the label
    is listed with recall 0 and counts in the macro-F1), never refused."""
    if not rows:
        raise ClassifierError("no evaluation rows")
    info = classifier.info
    unknown = sorted({r.category for r in rows} - set(info.labels))
    predictions = []
    for start in range(0, len(rows), batch_size):
        predictions += classifier.predict_batch([r.ticket for r in rows[start : start + batch_size]])
    truth = [r.category for r in rows]
    labels = (*info.labels, *unknown)
    raw = [p.raw_category for p in predictions]
    category = classification_metrics(truth, raw, labels)
    thresholded = classification_metrics(truth, [p.category for p in predictions], labels)
    calibration = {
        "category": _calibration([p.raw_category_confidence for p in predictions], truth, raw),
    }
    priority = None
    unknown_pri: list[str] = []
    if info.priorities and all(r.priority is not None for r in rows):
        pri_truth = [r.priority or "" for r in rows]
        unknown_pri = sorted(set(pri_truth) - set(info.priorities))
        pri_pred = [p.priority for p in predictions]
        priority = classification_metrics(pri_truth, pri_pred, (*info.priorities, *unknown_pri))
        calibration["priority"] = _calibration(
            [p.priority_confidence for p in predictions], pri_truth, pri_pred
        )
    return EvalReport(category, priority, thresholded, calibration, tuple(unknown + unknown_pri))


def _calibration(
    confidence: Sequence[float], truth: Sequence[str], predicted: Sequence[str]
) -> dict[str, Any]:
    correct = [t == p for t, p in zip(truth, predicted, strict=True)]
    return {
        "ece": expected_calibration_error(confidence, correct),
        "reliability": reliability_table(confidence, correct),
    }


def train(
    rows: Sequence[LabelledTicket],
    out_dir: Path,
    *,
    version: str | None = None,
    version_prefix: str = "custom",
    config: TrainConfig = TrainConfig(),
    holdout: Sequence[LabelledTicket] | None = None,
    holdout_fraction: float = 0.2,
    labels: Sequence[str] | None = None,
    priorities: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> tuple[ModelInfo, EvalReport]:
    """Train, measure on a hold-out and save a model directory.

    With `holdout` given (e.g. the seed set's own hold-out), the saved model is the one measured. Otherwise a
    stratified `holdout_fraction` of `rows` is held out to measure, then the saved model is refit on all rows
    (the recorded figures therefore describe a model trained on slightly less data).
    """
    say = progress or (lambda _msg: None)
    check_trainable(rows)
    labels = tuple(labels) if labels else tuple(sorted({r.category for r in rows}))
    has_priority = rows[0].priority is not None
    if priorities is None:
        priorities = tuple(sorted({r.priority for r in rows if r.priority})) if has_priority else ()
    refit = holdout is None
    if holdout is None:
        train_idx, test_idx = stratified_split(rows, holdout_fraction, config.seed)
        fit_rows, holdout = [rows[i] for i in train_idx], [rows[i] for i in test_idx]
        say(f"holding out {len(holdout)} of {len(rows)} rows (stratified) to measure")
    else:
        fit_rows = list(rows)
    model = fit(fit_rows, config, labels=labels, priorities=priorities, progress=say)
    report = evaluate(model.classifier(), holdout)
    if refit:
        say("refitting on all rows")
        model = fit(rows, config, labels=labels, priorities=priorities, progress=say)
    digest = data_hash(rows)
    metrics = {
        "holdout": report.to_json(),
        "holdout_rows": len(holdout),
        "train_rows": len(rows),
        "saved_model_refit_on_all_rows": refit,
        "train_seconds": round(model.seconds, 2),
    }
    info = model.save(
        out_dir,
        version=version,
        version_prefix=version_prefix,
        data_hash=digest,
        metrics=metrics,
        extra={"config": asdict(config)},
    )
    return info, report
