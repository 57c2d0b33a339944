"""Calibration figures and temperature scaling (classifier.calibration)."""

from __future__ import annotations

import numpy as np

from classifier.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability_table,
    softmax,
)


def test_ece_and_reliability_table_by_hand() -> None:
    confidence = [0.95, 0.95, 0.95, 0.95, 0.55, 0.55]
    correct = [True, True, True, False, True, False]
    table = {row["bin"]: row for row in reliability_table(confidence, correct)}
    assert table["0.9-1.0"] == {"bin": "0.9-1.0", "n": 4, "confidence": 0.95, "accuracy": 0.75}
    assert table["0.5-0.6"] == {"bin": "0.5-0.6", "n": 2, "confidence": 0.55, "accuracy": 0.5}
    assert table["0.0-0.1"]["n"] == 0 and table["0.0-0.1"]["accuracy"] is None
    # 4/6 * |0.75 - 0.95| + 2/6 * |0.5 - 0.55|
    assert expected_calibration_error(confidence, correct) == round(4 / 6 * 0.2 + 2 / 6 * 0.05, 4)
    assert expected_calibration_error([1.0], [True]) == 0.0


def _overconfident(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is far surer than their 70 % hit rate."""
    y = rng.integers(0, 3, n)
    predicted = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    logits = rng.normal(0, 0.3, (n, 3))
    logits[np.arange(n), predicted] += 6.0
    return logits, y


def test_temperature_fitted_on_held_out_logits_lowers_ece_on_fresh_ones() -> None:
    rng = np.random.default_rng(3)
    fit_logits, fit_y = _overconfident(2000, rng)
    test_logits, test_y = _overconfident(2000, rng)
    temperature = fit_temperature(fit_logits, fit_y)
    assert temperature > 1.5  # overconfident: spread the probabilities out

    def ece(proba: np.ndarray) -> float:
        top = proba.argmax(axis=1)
        return expected_calibration_error(proba[np.arange(len(top)), top], top == test_y)

    before, after = ece(softmax(test_logits)), ece(softmax(test_logits, temperature))
    assert after < 0.05 < before


def test_temperature_stays_one_when_scaling_would_not_help_or_data_is_too_small() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 30)
    assert fit_temperature(rng.normal(size=(30, 2)), y) == 1.0
    # Already calibrated: a hit rate that matches the confidence.
    n = 4000
    y = rng.integers(0, 2, n)
    logit = np.log(0.8 / 0.2)
    predicted = np.where(rng.random(n) < 0.8, y, 1 - y)
    logits = np.zeros((n, 2))
    logits[np.arange(n), predicted] = logit
    assert abs(fit_temperature(logits, y) - 1.0) < 0.1
