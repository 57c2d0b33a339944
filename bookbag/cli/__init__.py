"""The `bookbag` command line: one sub-command module per area, wired together here.

Each module in this package exposes ``register(subparsers)``; a handler returns an exit code or
raises :class:`CliError` for bad input, which ``main`` prints as one line (no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bookbag.cli.errors import CliError


def build_parser() -> argparse.ArgumentParser:
    from bookbag.cli import (
        classifier_cmd,
        core_cmd,
        data_cmd,
        models_cmd,
        rules_cmd,
        schema_cmd,
        webhooks_cmd,
    )

    parser = argparse.ArgumentParser(prog="bookbag", description="Bookbag support-workflow engine")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    core_cmd.register(subparsers)
    rules_cmd.register(subparsers)
    classifier_cmd.register(subparsers)
    models_cmd.register(subparsers)
    schema_cmd.register(subparsers)
    data_cmd.register(subparsers)
    webhooks_cmd.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:  # a setting from the environment is refused (bookbag.settings)
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:  # a model-wide check (no field) names its settings in its message
                message = "BOOKBAG_" + "_".join(str(part) for part in error["loc"]).upper() + ": " + message
            print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bookbag … | head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
