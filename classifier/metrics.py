"""Classification quality figures (macro-F1, per-class precision/recall, confusion matrix) and their text report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Figures over `labels` (rows = truth, columns = prediction in the confusion matrix)."""
    present = [lab for lab in labels if lab in set(y_true)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), zero_division=0
    )
    per_class = {
        lab: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    # Macro over the labels that occur in the truth: a label absent from the evaluation data says nothing.
    macro = float(np.mean([per_class[lab]["f1"] for lab in present])) if present else 0.0
    accuracy = float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)])) if y_true else 0.0
    return {
        "n": len(y_true),
        "macro_f1": round(macro, 4),
        "accuracy": round(accuracy, 4),
        "per_class": per_class,
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=list(labels)).tolist(),
    }


def format_metrics(title: str, metrics: dict[str, Any]) -> str:
    labels: list[str] = metrics["labels"]
    width = max([len(lab) for lab in labels] + [8])
    lines = [
        f"{title}: macro-F1 {metrics['macro_f1']:.3f}  accuracy {metrics['accuracy']:.3f}  (n={metrics['n']})",
        f"  {'label':<{width}}  precision  recall     f1  support",
    ]
    for lab in labels:
        c = metrics["per_class"][lab]
        lines.append(
            f"  {lab:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:5.3f}  {c['support']:7d}"
        )
    short = [lab[:6] for lab in labels]
    lines.append("  confusion (rows = true, columns = predicted):")
    lines.append(f"  {'':<{width}}  " + " ".join(f"{s:>6}" for s in short))
    for lab, row in zip(labels, metrics["confusion"], strict=True):
        lines.append(f"  {lab:<{width}}  " + " ".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)
