"""Which fast paths this process takes, decided once at start-up from the installed library versions.

Two pieces of Bookbag lean on other libraries' internals for speed:

* ``execution`` (``schema/fast_execution.py``): an execution context that overrides graphql-core's
  ``execute_fields`` and reads strawberry's field metadata to build plain attribute reads in one pass;
* ``ws_direct`` (``bookbag/ws/direct.py``): the live fan-out writes pre-encoded frames straight to uvicorn's
  websockets-sansio transport, found through Starlette's and strawberry's private attributes.

Internals change without notice, so each is switched on only when every library it reaches into is at a
version its tests ran against (:data:`TESTED`, the versions of ``requirements-dev.lock``); otherwise the
standard path is taken (graphql-core's executor; the ASGI send), which gives the same answers. The choice is
logged once at INFO. ``BOOKBAG_FAST_PATHS=off`` forces both off.

After ``make lock`` moves one of these libraries, run ``tests/api/test_fast_execution.py``,
``tests/live/test_direct_frames.py`` and ``tests/api/test_fast_paths.py``, then add the new version here
(the last of those fails until the lock's versions are listed).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("bookbag.fast_paths")

FastPathsMode = Literal["auto", "off"]

# fast path → library (distribution name) → the versions the fast path was tested with
TESTED: Mapping[str, Mapping[str, frozenset[str]]] = {
    "execution": {
        "graphql-core": frozenset({"3.3.2"}),
        "strawberry-graphql": frozenset({"0.341.2"}),
    },
    "ws_direct": {
        "uvicorn": frozenset({"0.55.0"}),
        "websockets": frozenset({"17.4"}),
        "starlette": frozenset({"1.10.0"}),
        "strawberry-graphql": frozenset({"0.341.2"}),
    },
}


@dataclass(frozen=True)
class FastPaths:
    """The fast paths on for this process (``create_app`` hands them to the schema and the websocket view)."""

    execution: bool = True
    ws_direct: bool = True


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def untested_versions(
    path: str, version_of: Callable[[str], str | None] = _installed
) -> list[tuple[str, str | None]]:
    """(library, installed version) for each library of the fast path ``path`` not at a tested version."""
    return [
        (library, version_of(library))
        for library, versions in TESTED[path].items()
        if version_of(library) not in versions
    ]


def choose_fast_paths(mode: FastPathsMode, version_of: Callable[[str], str | None] = _installed) -> FastPaths:
    """The fast paths to take: all off for ``off``; for ``auto`` those whose libraries are at tested versions.
    Logs the decision (one line at INFO)."""
    if mode == "off":
        log.info("fast paths off (BOOKBAG_FAST_PATHS=off): graphql-core's executor, ASGI websocket sends")
        return FastPaths(execution=False, ws_direct=False)
    on: dict[str, bool] = {}
    reasons: list[str] = []
    for path in TESTED:
        untested = untested_versions(path, version_of)
        on[path] = not untested
        if untested:
            found = ", ".join(f"{library} {version or 'not installed'}" for library, version in untested)
            reasons.append(f"{path} off: untested {found}")
    chosen = FastPaths(execution=on["execution"], ws_direct=on["ws_direct"])
    log.info(
        "fast paths: execution %s, ws_direct %s%s",
        "on" if chosen.execution else "off",
        "on" if chosen.ws_direct else "off",
        f" ({'; '.join(reasons)}; standard paths taken)" if reasons else " (tested library versions)",
    )
    return chosen
