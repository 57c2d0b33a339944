"""``bookbag schema export``: write the GraphQL schema (SDL) to ``schema/schema.graphql`` (or ``--check`` it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bookbag.cli.errors import CliError


def default_path() -> Path:
    import schema

    return Path(next(iter(schema.__path__))) / "schema.graphql"


def schema_sdl() -> str:
    from api.build import build_schema

    return build_schema().as_str().rstrip() + "\n"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("schema", help="the GraphQL schema").add_subparsers(
        dest="sub", required=True
    )
    export = parser.add_parser("export", help="write the schema SDL (default: schema/schema.graphql)")
    export.add_argument("--output", "-o", type=Path, default=None, help="file to write, or - for stdout")
    export.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file differs from the code"
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    sdl = schema_sdl()
    if args.output is not None and str(args.output) == "-":
        sys.stdout.write(sdl)
        return 0
    path: Path = args.output or default_path()
    if args.check:
        try:
            current = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", 1) from exc
        if current != sdl:
            raise CliError(f"{path} is out of date: run `bookbag schema export`", 1)
        print(f"{path} is up to date")
        return 0
    try:
        path.write_text(sdl, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"wrote {path}", file=sys.stderr)
    return 0
