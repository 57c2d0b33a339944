"""The shipped default model: where it lives and how to rebuild it from the repository's seed set alone."""

from __future__ import annotations

from pathlib import Path

from classifier.dataset import LabelledTicket, load_labelled
from classifier.seed.compose import HOLDOUT_FILE, TRAIN_FILE, compose_files
from classifier.training import EvalReport, Progress, TrainConfig, train
from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES, ModelInfo

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_VERSION_PREFIX = "default"


def default_model_dir() -> Path:
    """The model directory shipped inside the package (also correct for an editable install)."""
    return DEFAULT_MODEL_DIR


def load_seed(path: Path) -> list[LabelledTicket]:
    return load_labelled(
        [path],
        label_col="category",
        priority_col="priority",
        group_col="scenario",  # translations of one scenario stay on one side of every split
        allowed_labels=DEFAULT_CATEGORIES,
        allowed_priorities=DEFAULT_PRIORITIES,
    )


def build_default(
    out_dir: Path | None = None,
    *,
    recompose: bool = True,
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
) -> tuple[ModelInfo, EvalReport]:
    """Re-render the seed JSONL from the hand-written items, train on its training split and measure on its
    hold-out. The saved model is exactly the one measured (hold-out rows are never trained on)."""
    say = progress or (lambda _msg: None)
    if recompose:
        n_train, n_holdout = compose_files()
        say(f"seed set composed: {n_train} training rows, {n_holdout} hold-out rows")
    rows, holdout = load_seed(TRAIN_FILE), load_seed(HOLDOUT_FILE)
    out = out_dir or DEFAULT_MODEL_DIR
    return train(
        rows,
        out,
        version_prefix=DEFAULT_VERSION_PREFIX,
        config=config,
        holdout=holdout,
        labels=DEFAULT_CATEGORIES,
        priorities=DEFAULT_PRIORITIES,
        progress=say,
    )
