"""A multinomial logistic-regression scorer over the text features, stacked under the LightGBM boosters.

Trees split one n-gram at a time and struggle to add up hundreds of weak text cues; a linear model does exactly
that. Its class probabilities become extra LightGBM features (out-of-fold during training, so the boosters learn
how far to trust them), and the boosters combine them with metadata and tone. For the category, its
log-probabilities are also the booster's starting scores (``TrainConfig.boost_from_linear``), so the trees only
correct it. Stored as a plain ``.npz`` (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from classifier.types import ClassifierError

LINEAR_FORMAT = 1


@dataclass(frozen=True)
class LinearScorer:
    coef: np.ndarray  # (n_classes, n_features)
    intercept: np.ndarray  # (n_classes,)
    _coef_t: np.ndarray = field(init=False, repr=False, compare=False)

    @property
    def n_classes(self) -> int:
        return int(self.coef.shape[0])

    def __post_init__(self) -> None:
        # Sparse @ dense wants the dense side contiguous; transposing once here saves a copy per call.
        object.__setattr__(self, "_coef_t", np.ascontiguousarray(self.coef.T))

    def proba(self, x: sp.csr_matrix) -> np.ndarray:
        coef_t: np.ndarray = self._coef_t
        logits = np.asarray(x @ coef_t) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        out: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    @classmethod
    def fit(cls, x: sp.csr_matrix, y: np.ndarray, n_classes: int, c: float) -> LinearScorer:
        model = LogisticRegression(C=c, max_iter=300)
        model.fit(x, y)
        coef = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
        intercept = np.full(n_classes, -30.0, dtype=np.float32)  # classes absent from y: never predicted
        present = model.classes_.astype(int)
        if len(present) == 2:  # sklearn collapses two classes to one weight vector
            coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
            coef[present[0]], intercept[present[0]] = 0.0, 0.0
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        return cls(coef, intercept)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, format=np.asarray(LINEAR_FORMAT), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path) -> LinearScorer:
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != LINEAR_FORMAT:
                    raise ClassifierError(f"{path}: unsupported linear scorer format {int(data['format'])}")
                return cls(data["coef"].astype(np.float32), data["intercept"].astype(np.float32))
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierError(f"cannot read linear scorer {path}: {exc}") from exc


def out_of_fold_proba(
    x: sp.csr_matrix,
    y: np.ndarray,
    n_classes: int,
    c: float,
    groups: Sequence[str] | None,
    n_folds: int,
    seed: int,
) -> np.ndarray:
    """Each row's probabilities from a scorer that never saw it (nor, with groups, any row of its group)."""
    out = np.zeros((x.shape[0], n_classes), dtype=np.float32)
    if groups is not None and len(set(groups)) >= n_folds:
        splits = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(
            x, y, np.asarray(groups)
        )
    else:
        counts = np.bincount(y)
        folds = max(2, min(n_folds, int(counts[counts > 0].min())))
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)
    for fit_idx, held_idx in splits:
        if len(np.unique(y[fit_idx])) < 2:
            out[held_idx] = 1.0 / n_classes
            continue
        out[held_idx] = LinearScorer.fit(x[fit_idx], y[fit_idx], n_classes, c).proba(x[held_idx])
    return out
