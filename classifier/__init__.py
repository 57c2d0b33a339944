"""Ticket classifier: LightGBM category and priority predictions over shared TF-IDF text features.

Load a model directory once (`Classifier.load(default_model_dir())`), then `predict` / `predict_batch`. Train a
merchant's own model with `train`, measure one with `evaluate`, rebuild the shipped one with `build_default`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classifier.dataset import LabelledTicket, load_labelled
    from classifier.default import build_default, default_model_dir
    from classifier.model import Classifier
    from classifier.training import EvalReport, TrainConfig, evaluate, fit, train
    from classifier.types import (
        DEFAULT_CATEGORIES,
        DEFAULT_PRIORITIES,
        ClassifierError,
        ModelInfo,
        Prediction,
        TicketInput,
    )

# Loaded on first use (PEP 562): a process that needs only `classifier.cleaning` (the ruleset workers build
# `ticket.body` facts) does not import LightGBM, scikit-learn and the training code (~1 s, ~60 MiB).
_MODULE_OF = {
    "LabelledTicket": "classifier.dataset",
    "load_labelled": "classifier.dataset",
    "build_default": "classifier.default",
    "default_model_dir": "classifier.default",
    "Classifier": "classifier.model",
    "EvalReport": "classifier.training",
    "TrainConfig": "classifier.training",
    "evaluate": "classifier.training",
    "fit": "classifier.training",
    "train": "classifier.training",
    "DEFAULT_CATEGORIES": "classifier.types",
    "DEFAULT_PRIORITIES": "classifier.types",
    "ClassifierError": "classifier.types",
    "ModelInfo": "classifier.types",
    "Prediction": "classifier.types",
    "TicketInput": "classifier.types",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'classifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_PRIORITIES",
    "Classifier",
    "ClassifierError",
    "EvalReport",
    "LabelledTicket",
    "ModelInfo",
    "Prediction",
    "TicketInput",
    "TrainConfig",
    "build_default",
    "default_model_dir",
    "evaluate",
    "fit",
    "load_labelled",
    "train",
]
