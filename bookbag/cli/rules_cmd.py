"""``bookbag rules validate|test|eval|backtest``: work with ruleset files from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from bookbag.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    rules = subparsers.add_parser("rules", help="validate, test, evaluate and backtest rulesets")
    sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    sub.required = True

    validate = sub.add_parser(
        "validate", help="check a ruleset; prints FILE:LINE:COL CODE message per problem"
    )
    validate.add_argument("file")
    validate.add_argument("--no-warnings", action="store_true", help="print errors only")
    validate.set_defaults(handler=_validate)

    test = sub.add_parser("test", help="run the ruleset's tests section")
    test.add_argument("file")
    test.set_defaults(handler=_test)

    evaluate = sub.add_parser("eval", help="decide one set of facts and print the decision as JSON")
    evaluate.add_argument("file")
    evaluate.add_argument("--facts", required=True, help="facts as JSON, or @path to a JSON file")
    evaluate.add_argument("--trace", action="store_true", help="include every rule considered and each leaf")
    evaluate.add_argument("--route", action="store_true", help="also print the routing decision")
    evaluate.set_defaults(handler=_eval)

    backtest = sub.add_parser(
        "backtest",
        help="replay recorded facts under a draft and the active ruleset (from files, or --from-db)",
    )
    backtest.add_argument("draft")
    backtest.add_argument("--against", metavar="ACTIVE", help="the active ruleset's file (without --from-db)")
    backtest.add_argument(
        "--cases", metavar="FILE.jsonl", help="one JSON object of facts a line (without --from-db)"
    )
    backtest.add_argument(
        "--from-db",
        action="store_true",
        help="replay the merchant's recorded decisions against its active version, from the configured database",
    )
    backtest.add_argument("--merchant", metavar="SLUG", help="with --from-db: the merchant")
    backtest.add_argument(
        "--since", default="30d", help="with --from-db: how far back, e.g. 30d, 12h (default 30d)"
    )
    backtest.add_argument(
        "--limit", type=int, default=10_000, help="with --from-db: at most this many decisions"
    )
    backtest.set_defaults(handler=_backtest)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a ruleset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def _load(path: str) -> Any:
    import policy

    source = _read(path)
    report = policy.validate_source(source, path)
    if report.ruleset is None:
        first = report.problems[0]
        more = (
            f" (and {len(report.problems) - 1} more; run 'bookbag rules validate {path}')"
            if len(report.problems) > 1
            else ""
        )
        raise CliError(f"invalid ruleset: {first}{more}", 1)
    return report.ruleset


def _validate(args: argparse.Namespace) -> int:
    import policy

    report = policy.validate_source(_read(args.file), args.file)
    # In file order, errors and warnings interleaved, so the list reads top to bottom alongside the YAML.
    for problem in report.in_file_order:
        if problem.severity == "error" or not args.no_warnings:
            print(problem)
    if report.ok:
        print(f"{args.file}: ok ({len(report.warnings)} warning(s))", file=sys.stderr)
        return 0
    print(f"{args.file}: {len(report.problems)} problem(s)", file=sys.stderr)
    return 1


def _test(args: argparse.Namespace) -> int:
    import policy

    ruleset = _load(args.file)
    engine = policy.PolicyEngine(max_compiled=2)
    try:
        results = engine.run_tests(ruleset)
    finally:
        engine.close()
    failed = 0
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        suffix = "" if result.passed else f": {result.message}"
        print(f"{status} {result.name}{suffix}")
        failed += not result.passed
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _parse_facts(text: str) -> dict[str, Any]:
    raw = _read(text[1:]) if text.startswith("@") else text
    try:
        facts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--facts is not valid JSON: {exc}") from None
    if not isinstance(facts, dict):
        raise CliError('--facts must be a JSON object like {"ticket": {...}, "action": {...}}')
    return facts


def _eval(args: argparse.Namespace) -> int:
    import policy

    facts = _parse_facts(args.facts)
    ruleset = _load(args.file)
    engine = policy.PolicyEngine(max_compiled=2)
    try:
        out = engine.decide(ruleset, facts, trace=args.trace).to_dict()
        if args.route:
            out["routing"] = engine.route(ruleset, facts, trace=args.trace).to_dict()
    finally:
        engine.close()
    print(json.dumps(out, indent=2, sort_keys=False))
    return 0


def _cases(path: str) -> Iterator[dict[str, Any]]:
    text = _read(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}:{number}: not valid JSON: {exc}") from None
        if not isinstance(case, dict):
            raise CliError(f"{path}:{number}: each line must be a JSON object of facts")
        yield case


def parse_since(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``: a positive span of days, hours or minutes."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise CliError(
            f"--since {text!r}: give a positive number of days, hours or minutes, e.g. 30d, 12h, 90m"
        )
    return timedelta(**{units[unit]: int(number)})


def _recorded(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]]]:
    """The merchant's active version and its recorded decisions' facts, from the configured database."""
    from bookbag.cli.core_cmd import open_database
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from workflow.errors import DomainError
    from workflow.rulesets import versions as rulesets
    from workflow.tenancy import merchants
    from workflow.tenancy.principal import Principal, Role

    if not args.merchant:
        raise CliError("--from-db needs --merchant SLUG")
    since = parse_since(args.since)
    settings = Settings()
    database = open_database(settings)
    services = build_services(settings)
    try:
        with database.read_only() as session:
            merchant = merchants.get_merchant_by_slug(session, args.merchant)
            principal = Principal(merchant_id=merchant.id, role=Role.VIEWER)
            prepared = rulesets.prepare_backtest(
                session, services, principal, limit=args.limit, since=services.clock() - since
            )
            active = rulesets.active_ruleset(session, services, merchant.id).ruleset
    except DomainError as exc:
        raise CliError(exc.message) from exc
    finally:
        database.dispose()
    return active, prepared.cases


def _backtest(args: argparse.Namespace) -> int:
    import policy

    draft = _load(args.draft)
    if args.from_db:
        if args.against or args.cases:
            raise CliError("--from-db replays the database's decisions: leave out --against and --cases")
        active, cases = _recorded(args)
    elif not (args.against and args.cases):
        raise CliError("give --against ACTIVE and --cases FILE.jsonl, or --from-db --merchant SLUG")
    else:
        active = _load(args.against)
        cases = list(_cases(args.cases))
    print(f"replaying {len(cases)} case(s)...", file=sys.stderr)
    engine = policy.PolicyEngine(max_compiled=4)
    try:
        report = engine.backtest(draft, active, cases)
    finally:
        engine.close()
    print(json.dumps(report.to_dict(), indent=2))
    return 0
