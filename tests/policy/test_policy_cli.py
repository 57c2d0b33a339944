"""`bookbag rules validate|test|eval|backtest` on valid and broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import policy
from bookbag.cli import main

DEFAULT = str(policy.default_ruleset_path())


def test_validate_ok_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", DEFAULT]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("ruleset: x\nstages: [a]\npermissions:\n  - {id: p, effect: nope}\n")
    capsys.readouterr()
    assert main(["rules", "validate", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"{bad}:4:21 E_UNKNOWN_EFFECT unknown effect 'nope' (known: allow, require_approval, deny)"
    ]


def test_missing_file_and_bad_json_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", "/no/such.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "error: no such file: /no/such.yaml"
    assert main(["rules", "eval", DEFAULT, "--facts", "{nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --facts is not valid JSON") and "\n" not in err


def test_test_and_eval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", DEFAULT]) == 0
    assert capsys.readouterr().out.strip().endswith("passed, 0 failed")
    facts = {
        "ticket": {"stage": "triaged"},
        "action": {"type": "refund", "actor": "ai", "amount": 20},
        "classifier": {"category_confidence": 0.9},
    }
    assert main(["rules", "eval", DEFAULT, "--facts", json.dumps(facts), "--trace"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["effect"] == "allow" and out["matched_rules"] == ["ai-small-refund"]
    assert {"deciding_rules", "handoff", "ruleset_version", "trace"} <= out.keys()
    rule = next(t for t in out["trace"] if t["rule"] == "ai-small-refund")
    assert rule["matched"] is True and rule["conditions"]["result"] is True


def test_failing_ruleset_test_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("""\
ruleset: r
stages: [new]
permissions: [{id: p, effect: allow}]
tests:
  - {name: wrong on purpose, facts: {ticket: {stage: new}}, expect: {effect: deny}}
""")
    assert main(["rules", "test", str(path)]) == 1
    assert "FAIL wrong on purpose: expected effect 'deny', got 'allow'" in capsys.readouterr().out


def test_backtest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        Path(DEFAULT).read_text().replace("{fact: action.amount, lte: 50}", "{fact: action.amount, lte: 10}")
    )
    cases = tmp_path / "cases.jsonl"
    rows = [
        {
            "ticket": {"stage": "triaged"},
            "action": {"type": "refund", "actor": "ai", "amount": a},
            "classifier": {"category_confidence": 0.9},
        }
        for a in (5, 20, 40, 80)
    ]
    cases.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["rules", "backtest", str(draft), "--against", DEFAULT, "--cases", str(cases)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == 4 and report["changed"] == 2
    assert report["effect_transitions"] == {"allow->deny": 2}  # 20 and 40: no rule covers them now
    assert report["refund_amount_changing_approval_path"]["cases"] == 0
    cases.write_text("not json\n")
    assert main(["rules", "backtest", str(draft), "--against", DEFAULT, "--cases", str(cases)]) == 2


def test_validate_lists_problems_in_file_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Validation checks a rule's effect before its condition; the listing still follows the file.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "ruleset: x\nstages: [a]\npermissions:\n"
        "  - id: q\n"
        '    when: {fact: ticket.body, matches: "("}\n'
        "    effect: nope\n"
    )
    capsys.readouterr()
    assert main(["rules", "validate", str(bad)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" ")[0].removeprefix(f"{bad}:") for line in lines] == ["5:40", "6:13"]
    assert [line.split(" ")[1] for line in lines] == ["E_BAD_REGEX", "E_UNKNOWN_EFFECT"]


def test_validate_interleaves_errors_and_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "ruleset: x\nstages: [a]\nrouting:\n"
        "  - {id: typo, when: {fact: customer.is_vip, eq: true}, assign: {team: t}}\n"
        "  - {id: broken, when: {fact: ticket.nope, eq: 1}, assign: {team: t}}\n"
        "  - {id: typo2, when: {fact: order.opened, eq: true}, assign: {team: t}}\n"
    )
    capsys.readouterr()
    assert main(["rules", "validate", str(bad)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["W_UNKNOWN_FACT", "E_UNKNOWN_FACT", "W_UNKNOWN_FACT"]
    assert main(["rules", "validate", "--no-warnings", str(bad)]) == 1
    assert [line.split(" ")[1] for line in capsys.readouterr().out.strip().splitlines()] == ["E_UNKNOWN_FACT"]
