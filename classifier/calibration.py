"""Confidence calibration: expected calibration error, reliability tables and temperature scaling.

A confidence drives the rules (`classifier.category_confidence` above a threshold allows an AI refund), so it
should mean what it says: of the tickets answered with confidence 0.8, about 80 % should be right. Training fits
one temperature per task on rows the boosters never trained on (their validation slice, whose linear-scorer
inputs are out-of-fold too) and keeps it only when it lowers the expected calibration error there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

N_BINS = 10
# Temperatures outside this range mean the slice is too small or degenerate to say anything.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.2, 5.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    out: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return out


def reliability_table(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = N_BINS
) -> list[dict[str, Any]]:
    """Equal-width confidence bins: how many answers fell in each, their mean confidence and how many were right."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    index = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = index == b
        n = int(mask.sum())
        rows.append(
            {
                "bin": f"{b / n_bins:.1f}-{(b + 1) / n_bins:.1f}",
                "n": n,
                "confidence": round(float(conf[mask].mean()), 4) if n else None,
                "accuracy": round(float(hit[mask].mean()), 4) if n else None,
            }
        )
    return rows


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = N_BINS
) -> float:
    """Σ over bins of (share of answers) × |accuracy − mean confidence|, on the top answer's confidence."""
    total = len(confidence)
    if not total:
        return 0.0
    error = 0.0
    for row in reliability_table(confidence, correct, n_bins):
        if row["n"]:
            error += row["n"] / total * abs(row["accuracy"] - row["confidence"])
    return round(error, 4)


def calibration_summary(proba: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """ECE and reliability table of class probabilities against true class indices (-1: a label the model lacks)."""
    top = proba.argmax(axis=1)
    confidence = proba[np.arange(len(top)), top]
    correct = top == truth
    return {
        "ece": expected_calibration_error(confidence, correct),
        "reliability": reliability_table(confidence, correct),
    }


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of `y` on these held-out logits, or 1.0 when scaling
    would not lower their expected calibration error."""
    if len(y) < 50 or len(set(y.tolist())) < 2:
        return 1.0
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))[rows, y]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))

    result = minimize_scalar(nll, bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)), method="bounded")
    temperature = float(np.exp(result.x))
    before = _ece_of(softmax(logits), y)
    after = _ece_of(softmax(logits, temperature), y)
    return round(temperature, 4) if after < before else 1.0


def _ece_of(proba: np.ndarray, y: np.ndarray) -> float:
    top = proba.argmax(axis=1)
    return expected_calibration_error(proba[np.arange(len(y)), top], top == y)


def format_reliability(title: str, summary: dict[str, Any]) -> str:
    lines = [
        f"{title}: expected calibration error {summary['ece']:.3f}",
        "  confidence      n  mean conf  accuracy",
    ]
    for row in summary["reliability"]:
        if row["n"]:
            lines.append(
                f"  {row['bin']:<10} {row['n']:6d}  {row['confidence']:9.3f}  {row['accuracy']:8.3f}"
            )
    return "\n".join(lines)
