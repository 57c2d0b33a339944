"""`bookbag classifier train|predict|eval|build-default`: train, apply and measure ticket classifiers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bookbag.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("classifier", help="train, apply and measure the ticket classifier")
    sub = parser.add_subparsers(dest="classifier_command", metavar="ACTION")
    sub.required = True

    train = sub.add_parser("train", help="train a model from labelled tickets (.csv or .jsonl)")
    train.add_argument(
        "--data", type=Path, action="append", required=True, help="data file; repeat to append"
    )
    train.add_argument(
        "--text-col",
        action="append",
        help="text column (repeat or comma-separate to join several; default: subject+body, else text)",
    )
    train.add_argument("--label-col", default="category", help="category column (default: category)")
    train.add_argument(
        "--priority-col", help="priority column (optional; without it priority is not learned)"
    )
    train.add_argument("--label-map", type=Path, help="JSON object mapping raw labels to categories")
    train.add_argument(
        "--group-col",
        help="rows sharing this column's value stay on one side of the hold-out split (e.g. 'source' in the seed set)",
    )
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--version", help="model version string (default: custom-<model content hash>)")
    train.add_argument(
        "--holdout", type=float, default=0.2, help="share held out for the report (default 0.2)"
    )
    train.set_defaults(handler=_train)

    predict = sub.add_parser("predict", help="classify JSONL tickets from stdin, JSONL predictions to stdout")
    predict.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    predict.add_argument("--threshold", type=float, default=0.4, help="category confidence threshold")
    predict.set_defaults(handler=_predict)

    evaluate = sub.add_parser("eval", help="macro-F1 and per-class figures of a model on labelled data")
    evaluate.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    evaluate.add_argument("--data", type=Path, action="append", required=True)
    evaluate.add_argument("--text-col", action="append")
    evaluate.add_argument("--label-col", default="category")
    evaluate.add_argument("--priority-col")
    evaluate.add_argument("--label-map", type=Path)
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.set_defaults(handler=_eval)

    export = sub.add_parser(
        "export-corrections",
        help="write a merchant's classification corrections as JSONL training rows (append with train --data)",
    )
    export.add_argument("--merchant", required=True, help="merchant slug")
    export.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    export.set_defaults(handler=_export_corrections)

    build = sub.add_parser("build-default", help="rebuild the shipped default model from the seed set")
    build.add_argument("--out", type=Path, help="write here instead of the package's default_model directory")
    build.set_defaults(handler=_build_default)


def _export_corrections(args: argparse.Namespace) -> int:
    from bookbag.cli.core_cmd import open_database
    from bookbag.settings import Settings
    from workflow.errors import DomainError
    from workflow.tenancy.merchants import get_merchant_by_slug
    from workflow.tickets.service import corrections_as_training_rows

    database = open_database(Settings())
    try:
        with database.read_only() as session:
            merchant = get_merchant_by_slug(session, args.merchant)
            rows = corrections_as_training_rows(session, merchant.id)
    except DomainError as exc:
        raise CliError(exc.message) from exc
    try:
        with args.out.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"{len(rows)} corrected ticket(s) written to {args.out}", file=sys.stderr)
    return 0


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _text_cols(raw: list[str] | None) -> list[str] | None:
    if not raw:
        return None
    return [c.strip() for item in raw for c in item.split(",") if c.strip()]


def _load_rows(args: argparse.Namespace, *, allowed: Any = None, allowed_pri: Any = None) -> Any:
    from classifier.dataset import load_labelled, read_label_map

    label_map = read_label_map(args.label_map) if args.label_map else None
    return load_labelled(
        args.data,
        text_cols=_text_cols(args.text_col),
        label_col=args.label_col,
        priority_col=args.priority_col,
        group_col=getattr(args, "group_col", None),
        label_map=label_map,
        allowed_labels=allowed,
        allowed_priorities=allowed_pri,
    )


def _train(args: argparse.Namespace) -> int:
    from classifier.training import train
    from classifier.types import ClassifierError

    if not 0.05 <= args.holdout <= 0.5:
        raise CliError("--holdout must be between 0.05 and 0.5")
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a directory")
    try:
        rows = _load_rows(args)
        _progress(f"read {len(rows)} labelled rows from {len(args.data)} file(s)")
        if not args.priority_col:
            _progress("no --priority-col: the model will answer priority 'normal' with confidence 0")
        info, report = train(
            rows, args.out, version=args.version, holdout_fraction=args.holdout, progress=_progress
        )
    except ClassifierError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write the model to {args.out}: {exc}") from exc
    _print_report(report, where=" (hold-out)")
    print(f"saved model {info.version} to {args.out}")
    return 0


def _load_model(args: argparse.Namespace, threshold: float = 0.4) -> Any:
    from classifier import Classifier, default_model_dir
    from classifier.types import ClassifierError

    try:
        return Classifier.load(args.model or default_model_dir(), confidence_threshold=threshold)
    except ClassifierError as exc:
        raise CliError(str(exc)) from exc


def _predict(args: argparse.Namespace) -> int:
    """One output line per input line, in order: the prediction, or `{"line": N, "error": ...}` for a line that
    cannot be read (the others are still answered; the exit status is then 1)."""
    from classifier.types import TicketInput

    model = _load_model(args, args.threshold)
    pending: list[tuple[int, TicketInput | str]] = []
    failed = 0

    def flush() -> None:
        tickets = [item for _, item in pending if isinstance(item, TicketInput)]
        predictions = iter(model.predict_batch(tickets))
        for number, item in pending:
            if isinstance(item, TicketInput):
                sys.stdout.write(json.dumps(next(predictions).to_facts()) + "\n")
            else:
                sys.stdout.write(json.dumps({"line": number, "error": item}) + "\n")
        sys.stdout.flush()
        pending.clear()

    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        problem = _ticket_or_problem(line)
        if isinstance(problem, str):
            failed += 1
            print(f"stdin line {number}: {problem}", file=sys.stderr)
        pending.append((number, problem))
        if len(pending) >= 256:
            flush()
    flush()
    return 1 if failed else 0


def _ticket_or_problem(line: str) -> Any:
    from classifier.types import TicketInput

    try:
        row = json.loads(line)
    except ValueError as exc:
        return f"invalid JSON ({exc})"
    if not isinstance(row, dict):
        return "expected a JSON object"
    ticket = TicketInput.from_mapping(row)
    if not ticket.text.strip():
        return "needs a non-empty 'subject', 'body' or 'text'"
    return ticket


def _eval(args: argparse.Namespace) -> int:
    from classifier.training import evaluate
    from classifier.types import ClassifierError

    model = _load_model(args)
    try:
        rows = _load_rows(args)
        report = evaluate(model, rows)
    except ClassifierError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print(f"model {model.info.version}")
    if report.unknown_labels:
        print(
            f"labels the model does not know, scored as misses: {', '.join(report.unknown_labels)}",
            file=sys.stderr,
        )
    _print_report(report, model.confidence_threshold)
    return 0


def _print_report(report: Any, threshold: float | None = None, where: str = "") -> None:
    from classifier.calibration import format_reliability
    from classifier.metrics import format_metrics

    print(format_metrics(f"category{where}", report.category))
    if threshold is not None:
        print(format_metrics(f"category with threshold {threshold}{where}", report.category_thresholded))
    if report.priority is not None:
        print(format_metrics(f"priority{where}", report.priority))
    for task, summary in report.calibration.items():
        print(format_reliability(f"{task} confidence{where}", summary))


def _build_default(args: argparse.Namespace) -> int:
    from classifier.default import build_default, default_model_dir
    from classifier.types import ClassifierError

    try:
        info, report = build_default(args.out, progress=_progress)
    except ClassifierError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write the model: {exc}") from exc
    _print_report(report, where=" (seed hold-out)")
    print(f"saved default model {info.version} to {args.out or default_model_dir()}")
    return 0
