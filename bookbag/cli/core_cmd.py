"""Core commands: ``serve``, ``demo``, ``merchants create``, ``keys create``/``revoke``, ``db upgrade``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bookbag.cli import data_cmd
from bookbag.cli.errors import CliError
from bookbag.settings import Settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP/GraphQL server (uvicorn)")
    serve.add_argument("--host", default=None, help="bind address (default: settings, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: settings, 8000)")
    serve.add_argument(
        "--demo", action="store_true", help="create the demo merchant first if it does not exist"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the port (default 1; more need PostgreSQL: they share LISTEN/NOTIFY)",
    )
    serve.set_defaults(handler=_serve)

    demo = subparsers.add_parser("demo", help="create a demo merchant with keys and sample tickets")
    demo.add_argument("--tickets", type=int, default=300, help="how many sample tickets (default 300)")
    demo.add_argument("--slug", default="demo", help="merchant slug (default demo)")
    demo.set_defaults(handler=_demo)

    merchants = subparsers.add_parser("merchants", help="manage merchants").add_subparsers(
        dest="sub", required=True
    )
    create = merchants.add_parser("create", help="create a merchant and its first admin key")
    create.add_argument("name")
    create.add_argument("--slug", default=None)
    create.set_defaults(handler=_merchants_create)
    data_cmd.register_merchant_commands(merchants)

    keys = subparsers.add_parser("keys", help="manage API keys").add_subparsers(dest="sub", required=True)
    key_create = keys.add_parser("create", help="create an API key (printed once)")
    key_create.add_argument("--merchant", required=True, help="merchant slug")
    key_create.add_argument("--role", required=True, choices=["admin", "agent", "ai", "partner", "viewer"])
    key_create.add_argument("--name", default="")
    key_create.set_defaults(handler=_keys_create)
    key_revoke = keys.add_parser(
        "revoke", help="revoke an API key (its open websockets close; at once on PostgreSQL)"
    )
    key_revoke.add_argument("--merchant", required=True, help="merchant slug")
    key_revoke.add_argument("key", help="the key's id (key_…) or its prefix (the 8 hex digits after bb_)")
    key_revoke.set_defaults(handler=_keys_revoke)

    db = subparsers.add_parser("db", help="database schema").add_subparsers(dest="sub", required=True)
    upgrade = db.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=_db_upgrade)
    recount = db.add_parser(
        "recount-load", help="recompute each agent's open-ticket count from the tickets (a repair)"
    )
    recount.add_argument("--merchant", help="only this merchant (slug); default: every merchant")
    recount.set_defaults(handler=_db_recount_load)
    rebuild = db.add_parser(
        "rebuild-reports",
        help="recount the reports' roll-ups from the tickets (after upgrading a database with history; a repair)",
    )
    rebuild.add_argument("--merchant", help="only this merchant (slug); default: every merchant")
    rebuild.set_defaults(handler=_db_rebuild_reports)


def open_database(settings: Settings) -> Any:
    """The configured database, migrated; a bad URL or unreachable server becomes one CliError line."""
    from sqlalchemy.engine import make_url

    from storage.db import Database, normalize_url
    from storage.migrate import upgrade
    from workflow.reports import rollups as report_rollups

    url = settings.resolved_database_url()
    try:
        database = Database.from_url(url)
        upgrade(database.engine)
        report_rollups.install(database)
    except Exception as exc:  # the one place a bad URL or unreachable server becomes one line
        shown = make_url(normalize_url(url)).render_as_string(hide_password=True) if "://" in url else url
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CliError(f"cannot open the database {shown!r}: {reason}") from exc
    return database


def _db_upgrade(_args: argparse.Namespace) -> int:
    from storage.migrate import current_revision

    database = open_database(Settings())
    print(f"database at revision {current_revision(database.engine)}")
    return 0


def _db_recount_load(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from storage.tables import Merchant
    from workflow.errors import DomainError
    from workflow.tenancy import merchants
    from workflow.tenancy.agents import recount_open_tickets

    database = open_database(Settings())
    try:
        with database.unit_of_work() as session:
            if args.merchant:
                ids = [merchants.get_merchant_by_slug(session, args.merchant).id]
            else:
                ids = list(session.exec(select(Merchant.id).order_by(Merchant.id)))
            wrong = sum(recount_open_tickets(session, merchant_id) for merchant_id in ids)
    except DomainError as exc:
        raise CliError(exc.message) from exc
    print(f"recounted the agents of {len(ids)} merchant(s): {wrong} count(s) corrected")
    return 0


def _db_rebuild_reports(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from storage.tables import Merchant
    from workflow.errors import DomainError
    from workflow.reports import rollups as report_rollups
    from workflow.tenancy import merchants

    database = open_database(Settings())
    with database.read_only() as session:
        try:
            if args.merchant:
                ids = [merchants.get_merchant_by_slug(session, args.merchant).id]
            else:
                ids = list(session.exec(select(Merchant.id).order_by(Merchant.id)))
        except DomainError as exc:
            raise CliError(exc.message) from exc
    tickets = 0
    for merchant_id in ids:
        tickets += report_rollups.rebuild(database, merchant_id)
    print(f"rebuilt the report roll-ups of {len(ids)} merchant(s) from {tickets} ticket(s)")
    return 0


def _merchants_create(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants

    database = open_database(Settings())
    try:
        with database.unit_of_work() as session:
            merchant = merchants.create_merchant(session, name=args.name, slug=args.slug)
            issued = merchants.create_api_key(
                session, merchant_id=merchant.id, role="admin", name="first admin key"
            )
    except DomainError as exc:
        raise CliError(exc.message) from exc
    print(f"merchant {merchant.slug} ({merchant.id})")
    print(f"admin key (shown once): {issued.secret}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants

    database = open_database(Settings())
    try:
        with database.unit_of_work() as session:
            merchant = merchants.get_merchant_by_slug(session, args.merchant)
            issued = merchants.create_api_key(
                session, merchant_id=merchant.id, role=args.role, name=args.name
            )
    except DomainError as exc:
        raise CliError(exc.message) from exc
    print(f"{args.role} key for {args.merchant} (shown once): {issued.secret}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from workflow.errors import DomainError
    from workflow.tenancy import merchants
    from workflow.tenancy.principal import Principal

    database = open_database(Settings())
    try:
        with database.unit_of_work() as session:
            merchant = merchants.get_merchant_by_slug(session, args.merchant)
            key_id = merchants.find_api_key_id(session, merchant.id, args.key)
            key = merchants.revoke_api_key(session, Principal.system(merchant.id), key_id)
            line = f"revoked {key.role} key {key.id} (bb_{key.prefix}_…) of {args.merchant}"
    except DomainError as exc:
        raise CliError(exc.message) from exc
    print(line)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bookbag.wiring import build_services
    from workflow.demo.seed import create_demo

    if not 0 <= args.tickets <= 20_000:
        raise CliError("--tickets must be between 0 and 20000")
    settings = Settings()
    database = open_database(settings)
    services = build_services(settings)

    try:
        demo = create_demo(database, services, slug=args.slug, tickets=args.tickets, progress=_progress)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"demo merchant {demo.slug}: {demo.ticket_count} tickets")
    for role, secret in demo.keys.items():
        print(f"  {role:8} key: {secret}")
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\r  tickets {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from bookbag.app import create_app
    from bookbag.server import WorkersRefused, log_to_stderr, run_server, run_workers

    settings = Settings()
    log_to_stderr(settings)
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if not 1 <= args.workers <= 64:
        raise CliError("--workers must be between 1 and 64")
    if args.demo:
        _demo_if_missing(settings)
    banner = f"Bookbag on http://{settings.host}:{settings.port}/  (GraphQL /graphql, admin /admin/)"
    if args.workers > 1:
        print(f"{banner}, {args.workers} worker processes", file=sys.stderr)
        try:
            run_workers(settings, args.workers)
        except WorkersRefused as exc:
            raise CliError(str(exc)) from None
        return 0
    app = create_app(settings)
    print(banner, file=sys.stderr)
    run_server(app, settings)
    return 0


def _demo_if_missing(settings: Settings) -> None:
    from bookbag.wiring import build_services
    from workflow.demo.seed import create_demo, demo_exists

    database = open_database(settings)
    with database.read_only() as session:
        exists = demo_exists(session, "demo")
    if exists:
        print("demo merchant exists; keys are in var/demo-keys.txt", file=sys.stderr)
        return
    print("creating the demo merchant (first start only)", file=sys.stderr)
    demo = create_demo(database, build_services(settings), slug="demo", tickets=300, progress=_progress)
    lines = [f"{role} {secret}" for role, secret in demo.keys.items()]
    keys_file = settings.data_dir / "demo-keys.txt"
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text("\n".join(lines) + "\n")
    print(
        f"demo merchant created with {demo.ticket_count} tickets; keys (also in {keys_file}):",
        file=sys.stderr,
    )
    for line in lines:
        print(f"  {line}", file=sys.stderr)
