"""Ticket classifier: LightGBM category and priority predictions over shared TF-IDF text features.

Load a model directory once (`Classifier.load(default_model_dir())`), then `predict` / `predict_batch`. Train a
merchant's own model with `train`, measure one with `evaluate`, rebuild the shipped one with `build_default`.
"""

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
