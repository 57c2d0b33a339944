"""Data lifecycle commands: ``merchants export``, ``merchants retention``, ``customers forget`` and
``retention prune`` (workflow.tickets.lifecycle)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bookbag.cli.errors import CliError
from bookbag.settings import Settings


def register_merchant_commands(merchants: argparse._SubParsersAction[Any]) -> None:
    export = merchants.add_parser(
        "export", help="every table's rows of a merchant as JSON Lines ({table, row} per line)"
    )
    export.add_argument("slug")
    export.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)
    retention = merchants.add_parser(
        "retention", help="how long a merchant's decision records of closed tickets are kept"
    )
    retention.add_argument("slug")
    retention.add_argument(
        "--decision-days", required=True, help="days after a ticket closed, or `forever` (the default)"
    )
    retention.set_defaults(handler=_merchant_retention)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    customers = subparsers.add_parser("customers", help="customers' personal data").add_subparsers(
        dest="sub", required=True
    )
    forget = customers.add_parser(
        "forget", help="redact a customer's personal data (as the GraphQL mutation forgetCustomer)"
    )
    forget.add_argument("--merchant", required=True, help="merchant slug")
    forget.add_argument("email")
    forget.set_defaults(handler=_forget)
    retention = subparsers.add_parser("retention", help="data retention").add_subparsers(
        dest="sub", required=True
    )
    prune = retention.add_parser(
        "prune", help="delete the history of tickets closed long ago now (as the server does periodically)"
    )
    prune.add_argument(
        "--closed-days", type=int, default=None, help="default: BOOKBAG_RETENTION_CLOSED_DAYS (0: keep all)"
    )
    prune.set_defaults(handler=_prune)


def _open() -> Any:
    from bookbag.cli.core_cmd import open_database

    return open_database(Settings())


def _export(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants
    from workflow.tickets.lifecycle import export_rows

    database = _open()
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    rows = 0
    try:
        with database.read_only() as session:
            merchant = merchants.get_merchant_by_slug(session, args.slug)
            for line in export_rows(session, merchant.id):
                out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                rows += 1
    except DomainError as exc:
        raise CliError(exc.message) from exc
    finally:
        if args.output:
            out.close()
    print(f"exported {rows} rows of {args.slug}", file=sys.stderr)
    return 0


def _merchant_retention(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants
    from workflow.tickets.lifecycle import set_decision_retention

    value = args.decision_days.strip().lower()
    try:
        days = None if value in {"forever", "none"} else int(value)
    except ValueError:
        raise CliError("--decision-days must be a number of days or `forever`") from None
    database = _open()
    try:
        with database.unit_of_work() as session:
            merchant = merchants.get_merchant_by_slug(session, args.slug)
            set_decision_retention(session, merchant.id, days)
    except DomainError as exc:
        raise CliError(exc.message) from exc
    kept = "for ever" if days is None else f"for {days} days after the ticket closed"
    print(f"{args.slug}: decision records kept {kept}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants
    from workflow.tenancy.principal import Principal
    from workflow.tickets.lifecycle import forget_customer

    database = _open()
    try:
        with database.unit_of_work() as session:
            merchant = merchants.get_merchant_by_slug(session, args.merchant)
            report = forget_customer(session, Principal.system(merchant.id), args.email)
    except DomainError as exc:
        raise CliError(exc.message) from exc
    counts = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in report.as_dict().items())
    print(f"redacted: {counts}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from workflow.tickets.lifecycle import prune_closed

    settings = Settings()
    days = settings.retention_closed_days if args.closed_days is None else args.closed_days
    if days < 0:
        raise CliError("--closed-days must be 0 or more")
    database = _open()
    with database.unit_of_work() as session:
        report = prune_closed(session, datetime.now(UTC), closed_days=days)
    counts = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in report.as_dict().items())
    print(f"deleted: {counts}" if days else "retention is off (0 days): nothing deleted")
    return 0
