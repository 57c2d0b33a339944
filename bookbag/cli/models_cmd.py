"""`bookbag models list|train|promote|rollback --merchant SLUG`: a merchant's own classifier models from the
command line, the twin of the admin mutations (`trainClassifierModel`, …). `train` trains in this process
(progress on stderr) and prints the comparison with the active model and the safety gate's verdict; the
operations are recorded in the audit log as the `system` actor."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bookbag.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "models", help="a merchant's own classifier models: train, promote, roll back"
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="the merchant's models, newest first, with their figures")
    listing.add_argument("--merchant", required=True, help="merchant slug")
    listing.set_defaults(handler=_list)
    train = sub.add_parser("train", help="train a candidate from the merchant's corrections (here, now)")
    train.add_argument("--merchant", required=True, help="merchant slug")
    train.set_defaults(handler=_train)
    promote = sub.add_parser("promote", help="make a ready model the active one (through the safety gate)")
    promote.add_argument("--merchant", required=True, help="merchant slug")
    promote.add_argument("--number", type=int, required=True, help="the model's number (see `models list`)")
    promote.set_defaults(handler=_promote)
    rollback = sub.add_parser("rollback", help="put back the model active before the current one")
    rollback.add_argument("--merchant", required=True, help="merchant slug")
    rollback.set_defaults(handler=_rollback)


def _context(slug: str) -> tuple[Any, Any, Any]:
    """(database, services, the merchant's system principal)."""
    from bookbag.cli.core_cmd import open_database
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from workflow.errors import DomainError
    from workflow.tenancy.merchants import get_merchant_by_slug
    from workflow.tenancy.principal import Principal

    settings = Settings()
    database = open_database(settings)
    try:
        with database.read_only() as session:
            merchant = get_merchant_by_slug(session, slug)
    except DomainError as exc:
        raise CliError(exc.message) from exc
    return database, build_services(settings), Principal.system(merchant.id)


def _by_number(session: Any, principal: Any, number: int) -> Any:
    from workflow import classifier_models as service

    for row in service.list_models(session, principal, first=200):
        if row.number == number:
            return row
    raise CliError(f"the merchant has no model #{number}")


def _describe(row: Any) -> str:
    lines = [f"#{row.number} {row.status} {row.model_version or ''} (compared with {row.baseline_version})"]
    if row.error:
        lines.append(f"  error: {row.error}")
    report = row.report or {}
    for name, side in (report.get("slices") or {}).items():
        if not side:
            continue
        a, c = side["active"], side["candidate"]
        lines.append(
            f"  {name} hold-out ({side['rows']} tickets): macro-F1 {a['macro_f1']:.3f} -> {c['macro_f1']:.3f}, "
            f"accuracy {a['accuracy']:.3f} -> {c['accuracy']:.3f}, ECE {a['ece']:.3f} -> {c['ece']:.3f}"
        )
    if report.get("changes_total"):
        lines.append(f"  {report['changes_total']} held-out ticket(s) answered differently")
    gate = report.get("gate")
    if gate:
        lines.append(
            "  gate: passes" if gate["passed"] else "  gate: refuses — " + "; ".join(gate["reasons"])
        )
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    from workflow import classifier_models as service

    database, services, principal = _context(args.merchant)
    with database.read_only() as session:
        rows = service.list_models(session, principal)
        serving = service.active_version(session, services, principal.merchant_id)
    print(f"active: {serving}")
    for row in rows:
        print(_describe(row))
    return 0


def _train(args: argparse.Namespace) -> int:
    from workflow import classifier_models as service
    from workflow.errors import DomainError

    database, services, principal = _context(args.merchant)
    try:
        with database.unit_of_work() as session:
            model_id = service.start_training(session, services, principal).id
    except DomainError as exc:
        raise CliError(exc.message) from exc

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    service.ModelTrainer(database, services, on_progress=say).run_once(model_id)
    with database.read_only() as session:
        row = service.get_model(session, principal, model_id)
    print(_describe(row))
    return 0 if row.status == service.READY else 1


def _promote(args: argparse.Namespace) -> int:
    from workflow import classifier_models as service
    from workflow.errors import DomainError

    database, services, principal = _context(args.merchant)
    try:
        with database.unit_of_work() as session:
            row = service.promote(
                session, services, principal, _by_number(session, principal, args.number).id
            )
            version = row.model_version
    except DomainError as exc:
        raise CliError(f"{exc.code.value}: {exc.message}") from exc
    print(f"model #{args.number} ({version}) is active")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from workflow import classifier_models as service
    from workflow.errors import DomainError

    database, services, principal = _context(args.merchant)
    try:
        with database.unit_of_work() as session:
            row = service.rollback(session, services, principal)
            number = row.number
            serving = service.active_version(session, services, principal.merchant_id)
    except DomainError as exc:
        raise CliError(f"{exc.code.value}: {exc.message}") from exc
    print(f"model #{number} rolled back; active: {serving}")
    return 0
