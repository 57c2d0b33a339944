"""`bookbag classifier train|predict|eval` on good and bad input (run in-process through the CLI's main)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bookbag.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def label_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("maps") / "map.json"
    names = ("cancel_order", "invoice", "account", "product_question")
    path.write_text(json.dumps({n.upper(): n for n in names}))
    return path


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory: pytest.TempPathFactory, small_csv: Path, label_map: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    argv = ["classifier", "train", "--data", str(small_csv), "--text-col", "message", "--label-col", "intent"]
    argv += [
        "--priority-col",
        "urgency",
        "--label-map",
        str(label_map),
        "--out",
        str(out),
        "--version",
        "cli-1",
    ]
    assert main(argv) == 0
    return out


def test_train_csv_with_label_map_reports_and_saves(
    cli_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((cli_model / "manifest.json").read_text())
    assert manifest["version"] == "cli-1"
    assert sorted(manifest["labels"]) == ["account", "cancel_order", "invoice", "product_question"]
    assert manifest["metrics"]["holdout"]["category"]["n"] > 0


def test_train_prints_holdout_report(
    tmp_path: Path, small_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "corrections.jsonl"
    extra.write_text(
        json.dumps(
            {"subject": "", "body": "Please send my receipt", "category": "invoice", "priority": "normal"}
        )
        + "\n"
    )
    argv = [
        "classifier",
        "train",
        "--data",
        str(small_jsonl),
        "--data",
        str(extra),
        "--priority-col",
        "priority",
    ]
    code, out, err = run([*argv, "--out", str(tmp_path / "m")], capsys)
    assert code == 0
    assert "macro-F1" in out and "confusion" in out and "precision" in out
    assert "round" in err  # progress goes to stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["metrics"]["train_rows"] == sum(1 for _ in small_jsonl.open()) + 1


def test_predict_reads_jsonl_stdin_writes_jsonl(
    cli_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"subject": "VAT invoice", "body": "please send the invoice for my order"},
        {"body": "reset password"},
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(json.dumps(x) for x in lines) + "\n"))
    code, out, _ = run(["classifier", "predict", "--model", str(cli_model)], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and rows[0]["model_version"] == "cli-1"
    assert set(rows[0]) >= {
        "category",
        "category_confidence",
        "priority",
        "priority_confidence",
        "model_version",
    }


def test_eval_prints_figures(
    cli_model: Path, small_csv: Path, label_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "classifier",
        "eval",
        "--model",
        str(cli_model),
        "--data",
        str(small_csv),
        "--text-col",
        "message",
    ]
    code, out, _ = run([*argv, "--label-col", "intent", "--label-map", str(label_map)], capsys)
    assert code == 0 and "macro-F1" in out and "cancel_order" in out


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_bad_inputs_give_one_clear_error(
    tmp_path: Path,
    small_csv: Path,
    cli_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = str(tmp_path / "m")
    code, _, err = run(["classifier", "train", "--data", str(small_csv), "--out", out], capsys)
    assert code == 2 and "no text column" in _one_error_line(err)
    argv = ["classifier", "train", "--data", str(small_csv), "--text-col", "message", "--out", out]
    code, _, err = run(argv, capsys)  # label column defaults to "category", which this file lacks
    assert code == 2 and "missing column(s) category" in _one_error_line(err)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run(["classifier", "train", "--data", str(empty), "--out", out], capsys)
    assert code == 2 and "no rows" in _one_error_line(err)

    code, _, err = run(["classifier", "train", "--data", str(tmp_path / "nope.csv"), "--out", out], capsys)
    assert code == 2 and "cannot read" in _one_error_line(err)

    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(["classifier", "train", "--data", str(binary), "--out", out], capsys)
    assert code == 2 and _one_error_line(err)

    argv = [
        "classifier",
        "eval",
        "--model",
        str(cli_model),
        "--data",
        str(small_csv),
        "--text-col",
        "message",
    ]
    code, out, err = run([*argv, "--label-col", "intent"], capsys)  # raw labels, no map: unknown to the model
    assert code == 0 and "scored as misses: ACCOUNT, CANCEL_ORDER, INVOICE, PRODUCT_QUESTION" in err
    assert "macro-F1 0.000" in out

    code, _, err = run(["classifier", "predict", "--model", str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in _one_error_line(err)

    monkeypatch.setattr("sys.stdin", io.StringIO("{broken\n"))
    code, out, err = run(["classifier", "predict", "--model", str(cli_model)], capsys)
    assert code == 1 and json.loads(out)["error"].startswith("invalid JSON") and "Traceback" not in err

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, _, err = run(["classifier", "train", "--data", str(small_csv), "--out", str(not_a_dir)], capsys)
    assert code == 2 and "not a directory" in _one_error_line(err)

    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"SOMETHING": "else"}))
    argv = ["classifier", "train", "--data", str(small_csv), "--text-col", "message", "--label-col", "intent"]
    code, _, err = run([*argv, "--label-map", str(bad_map), "--out", out], capsys)
    assert code == 2 and "not in the label map" in _one_error_line(err)


def test_predict_accepts_text_key_and_one_bad_line_spoils_only_itself(
    cli_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = "\n".join(
        [
            json.dumps({"text": "please send the VAT invoice for my last order"}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"subject": "", "body": "  "}),
            json.dumps({"body": "I forgot my password and the reset email never comes"}),
        ]
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin + "\n"))
    code, out, err = run(["classifier", "predict", "--model", str(cli_model)], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert len(rows) == 5
    assert rows[0]["category"] == "invoice" and rows[4]["category"] == "account"
    assert [r.get("line") for r in rows[1:4]] == [2, 3, 4]
    assert "invalid JSON" in rows[1]["error"] and "JSON object" in rows[2]["error"]
    assert "non-empty" in rows[3]["error"]
    assert "stdin line 2" in err and "Traceback" not in err


def test_eval_scores_labels_the_model_lacks_as_misses(
    cli_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "eval.jsonl"
    rows = [
        {"body": "please cancel my order, I changed my mind", "category": "cancel_order"},
        {"body": "where is my parcel, it is late", "category": "shipping_delivery"},
        {"body": "send me the invoice with VAT", "category": "invoice"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(
        ["classifier", "eval", "--model", str(cli_model), "--data", str(data), "--json"], capsys
    )
    assert code == 0
    report = json.loads(out)
    assert report["unknown_labels"] == ["shipping_delivery"]
    assert report["category"]["per_class"]["shipping_delivery"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert report["category"]["n"] == 3
    assert 0.0 <= report["calibration"]["category"]["ece"] <= 1.0


def test_eval_prints_ece_and_reliability_table(
    cli_model: Path, small_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "classifier",
        "eval",
        "--model",
        str(cli_model),
        "--data",
        str(small_jsonl),
        "--priority-col",
        "priority",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "category confidence: expected calibration error" in out
    assert "priority confidence: expected calibration error" in out
    assert "mean conf  accuracy" in out


def test_train_reports_every_empty_label_by_its_spreadsheet_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "history.csv"
    data.write_text(
        "body,category\n"
        "where is my order,order_status\n"
        '"a message\nover two lines",\n'
        "cancel it please,cancel_order\n"
        "invoice please,\n",
        encoding="utf-8",
    )
    code, _, err = run(["classifier", "train", "--data", str(data), "--out", str(tmp_path / "m")], capsys)
    assert code == 2
    assert "(and 1 more bad row(s))" in _one_error_line(err)
    assert f"{data}:3: empty 'category'" in err  # the quoted cell starts on line 3 and ends on line 4
    assert f"{data}:6: empty 'category'" in err


def test_train_reads_semicolon_separated_csv(
    tmp_path: Path, small_rows_semicolon: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    code, _, err = run(
        [
            "classifier",
            "train",
            "--data",
            str(small_rows_semicolon),
            "--out",
            str(out),
            "--label-col",
            "intent",
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(json.loads((out / "manifest.json").read_text())["labels"]) == [
        "account",
        "cancel_order",
        "invoice",
        "product_question",
    ]


@pytest.fixture
def small_rows_semicolon(tmp_path: Path) -> Path:
    """The small sample as a European spreadsheet exports it: semicolons, a BOM, commas inside the text."""
    import csv

    from tests.classifier.conftest import small_rows

    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["text", "intent"])
        for r in small_rows():
            writer.writerow([f"{r['subject']}, {r['body']}", r["category"]])
    return path
