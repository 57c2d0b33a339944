"""Waiting in tests: poll a condition until it holds or a deadline passes, never a guessed ``sleep``.

``await eventually(check)`` calls ``check`` (a plain function or one returning an awaitable) every
``interval`` seconds until it returns something truthy (answered) or stops raising ``AssertionError``;
past ``timeout`` it fails with the last assertion as the cause. ``eventually_sync`` is the same for
synchronous tests. A fixed sleep is still right where a test checks that something does NOT happen
within a time (a negative check); say so where it is used.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], *, timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last: AssertionError | None = None
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError as failed:
            last = failed
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s") from last
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        last: AssertionError | None = None
        try:
            value = check()
        except AssertionError as failed:
            last = failed
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s") from last
        time.sleep(interval)
