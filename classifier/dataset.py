"""Labelled training data: read CSV/JSONL files into tickets with labels, validate them, split them, hash them."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from classifier.types import ClassifierError, TicketInput


@dataclass(frozen=True)
class LabelledTicket:
    ticket: TicketInput
    category: str
    priority: str | None = None
    # Rows sharing a group (e.g. variants of one hand-written seed item) never straddle a train/hold-out split.
    group: str | None = None


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a .csv or .jsonl file as dicts (see `read_numbered_table` for where each row is in the file)."""
    return [row for _, row in read_numbered_table(path)]


# Delimiters a spreadsheet export may use; Excel in most of Europe writes `;`.
CSV_DELIMITERS = ",;\t|"


def read_numbered_table(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number in the file, row) pairs of a .csv (comma, semicolon, tab or pipe separated: detected) or
    .jsonl file. A CSV row's number is the line it starts on, as a spreadsheet shows it (the header is line 1)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise ClassifierError(f"{path}: unsupported file type {suffix or '(none)'} (use .csv or .jsonl)")
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if suffix == ".csv":
                reader = csv.DictReader(handle, delimiter=_csv_delimiter(handle.read(65536)))
                handle.seek(0)
                start = 2
                for row in reader:
                    rows.append((start, dict(row)))
                    start = reader.line_num + 1
            else:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError as exc:
                        raise ClassifierError(f"{path}:{number}: invalid JSON ({exc})") from exc
                    if not isinstance(item, dict):
                        raise ClassifierError(f"{path}:{number}: each line must be a JSON object")
                    rows.append((number, item))
    except (OSError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"cannot read {path}: {exc}") from exc
    except csv.Error as exc:
        raise ClassifierError(f"{path}: malformed CSV ({exc})") from exc
    if not rows:
        raise ClassifierError(f"{path}: no rows")
    return rows


def _csv_delimiter(sample: str) -> str:
    """The header line's most frequent delimiter outside quotes (the sniffer of the csv module guesses badly on
    free text); a comma when it has none."""
    header = sample.split("\n", 1)[0]
    counts: dict[str, int] = {d: 0 for d in CSV_DELIMITERS}
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_label_map(path: Path) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot read label map {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ClassifierError(f"{path}: a label map is a JSON object of string to string")
    return data


def load_labelled(
    paths: Sequence[Path],
    *,
    text_cols: Sequence[str] | None = None,
    label_col: str = "category",
    priority_col: str | None = None,
    group_col: str | None = None,
    label_map: Mapping[str, str] | None = None,
    allowed_labels: Iterable[str] | None = None,
    allowed_priorities: Iterable[str] | None = None,
) -> list[LabelledTicket]:
    """Read and validate labelled tickets from one or more files with the same columns.

    `text_cols` defaults to `subject`+`body` when present, else `text`. With one text column it is used as the
    body. Metadata columns named like `TicketInput` fields are picked up when present. Every bad row is reported
    in one error, each by its line in the file (`path:line: …`).
    """
    if not paths:
        raise ClassifierError("no data files given")
    allowed = set(allowed_labels) if allowed_labels is not None else None
    allowed_pri = set(allowed_priorities) if allowed_priorities is not None else None
    out: list[LabelledTicket] = []
    problems: list[str] = []
    for path in paths:
        numbered = read_numbered_table(path)
        rows = [row for _, row in numbered]
        columns = set().union(*(r.keys() for r in rows))
        cols = list(text_cols) if text_cols else _default_text_cols(columns)
        required = [*cols, label_col, *([priority_col] if priority_col else [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ClassifierError(
                f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(sorted(columns))})"
            )
        for number, row in numbered:
            try:
                out.append(
                    _labelled(
                        row,
                        cols,
                        label_col,
                        priority_col,
                        group_col,
                        label_map,
                        allowed,
                        allowed_pri,
                        path,
                        number,
                    )
                )
            except ClassifierError as exc:
                problems.append(str(exc))
    if problems:
        raise ClassifierError(_all_problems(problems))
    return out


def _all_problems(problems: list[str]) -> str:
    """The first problem on the first line, then the others (up to MAX_REPORTED_PROBLEMS), one per line."""
    if len(problems) == 1:
        return problems[0]
    shown = problems[1:MAX_REPORTED_PROBLEMS]
    more = len(problems) - 1 - len(shown)
    lines = [f"{problems[0]} (and {len(problems) - 1} more bad row(s))", *(f"  {p}" for p in shown)]
    if more:
        lines.append(f"  … and {more} more")
    return "\n".join(lines)


# Bad rows are all reported at once, up to this many.
MAX_REPORTED_PROBLEMS = 20


def _default_text_cols(columns: set[str]) -> list[str]:
    if "subject" in columns and "body" in columns:
        return ["subject", "body"]
    if "text" in columns:
        return ["text"]
    if "body" in columns:
        return ["body"]
    raise ClassifierError(
        f"no text column found (expected subject/body or text; found: {', '.join(sorted(columns))})"
    )


def _labelled(
    row: dict[str, Any],
    cols: Sequence[str],
    label_col: str,
    priority_col: str | None,
    group_col: str | None,
    label_map: Mapping[str, str] | None,
    allowed: set[str] | None,
    allowed_pri: set[str] | None,
    path: Path,
    number: int,
) -> LabelledTicket:
    where = f"{path}:{number}"
    label = str(row.get(label_col) or "").strip()
    if not label:
        raise ClassifierError(f"{where}: empty {label_col!r}")
    if label_map is not None:
        if label not in label_map:
            raise ClassifierError(f"{where}: label {label!r} is not in the label map")
        label = label_map[label]
    if allowed is not None and label not in allowed:
        raise ClassifierError(f"{where}: unknown label {label!r} (known: {', '.join(sorted(allowed))})")
    priority = None
    if priority_col:
        priority = str(row.get(priority_col) or "").strip()
        if not priority:
            raise ClassifierError(f"{where}: empty {priority_col!r}")
        if allowed_pri is not None and priority not in allowed_pri:
            raise ClassifierError(
                f"{where}: unknown priority {priority!r} (known: {', '.join(sorted(allowed_pri))})"
            )
    fields = dict(row)
    if cols != ["subject", "body"]:
        fields["subject"] = ""
        fields["body"] = "\n".join(str(row.get(c) or "") for c in cols)
    ticket = TicketInput.from_mapping(fields)
    if not ticket.text.strip():
        raise ClassifierError(f"{where}: empty text")
    group = None
    if group_col:
        # A row without a group is a group of its own (e.g. an agent's correction appended to the seed set).
        value = row.get(group_col)
        group = str(value) if value not in (None, "") else f"{path}:{number}"
    return LabelledTicket(ticket=ticket, category=label, priority=priority, group=group)


def data_hash(rows: Sequence[LabelledTicket]) -> str:
    """A stable fingerprint of the training rows (order-sensitive, as training is)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([asdict(row.ticket), row.category, row.priority], sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def check_trainable(rows: Sequence[LabelledTicket], *, min_per_label: int = 2) -> None:
    if not rows:
        raise ClassifierError("no training rows")
    counts = Counter(r.category for r in rows)
    if len(counts) < 2:
        raise ClassifierError(f"need at least two distinct labels to train, found {sorted(counts)}")
    rare = sorted(lab for lab, n in counts.items() if n < min_per_label)
    if rare:
        raise ClassifierError(f"label(s) with fewer than {min_per_label} examples: {', '.join(rare)}")
    with_priority = sum(r.priority is not None for r in rows)
    if 0 < with_priority < len(rows):
        raise ClassifierError("either every row or no row must carry a priority")


def stratified_split(
    rows: Sequence[LabelledTicket], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices (train, hold-out): stratified by category, and by group when rows carry groups."""
    labels = np.asarray([r.category for r in rows])
    n_folds = max(2, round(1 / fraction))
    if all(r.group is not None for r in rows) and len({r.group for r in rows}) >= 2 * n_folds:
        n_splits = n_folds
        groups = np.asarray([r.group for r in rows])
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train_idx, test_idx = next(splitter.split(np.zeros(len(rows)), labels, groups))
    else:
        n_test = max(round(len(rows) * fraction), len(set(labels.tolist())))
        if n_test >= len(rows):
            raise ClassifierError(f"too few rows ({len(rows)}) for a hold-out split")
        shuffle = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        train_idx, test_idx = next(shuffle.split(np.zeros(len(rows)), labels))
    return sorted(int(i) for i in train_idx), sorted(int(i) for i in test_idx)
