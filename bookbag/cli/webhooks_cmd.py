"""``bookbag webhooks dispatch``: the webhook dispatcher as a process of its own (``bookbag.webhook_worker``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bookbag.settings import Settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    webhooks = subparsers.add_parser("webhooks", help="webhook delivery").add_subparsers(
        dest="sub", required=True
    )
    dispatch = webhooks.add_parser(
        "dispatch",
        help="send webhook deliveries in this process (run `serve` with BOOKBAG_WEBHOOK_DISPATCHER=off); "
        "several may run on PostgreSQL",
    )
    dispatch.set_defaults(handler=_dispatch)


def _dispatch(_args: argparse.Namespace) -> int:
    from bookbag.server import log_to_stderr
    from bookbag.webhook_worker import run_worker

    settings = Settings()
    log_to_stderr(settings)
    if settings.webhook_dispatcher == "inline":
        print(
            "note: BOOKBAG_WEBHOOK_DISPATCHER=inline: `bookbag serve` dispatches too "
            "(safe: claims are leased; set it to off there to leave the sending to this process)",
            file=sys.stderr,
        )
    asyncio.run(run_worker(settings))
    return 0
