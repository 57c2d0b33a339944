"""Full garbage collections at a bounded rate, so that no tenant can make every tenant stall often.

CPython's cyclic collector runs a full (generation 2) pass when the objects that survived into the oldest
generation since the last full pass exceed a quarter of those that survived it. A pass walks every tracked
object that was not frozen at start-up (``bookbag.server.prepare_to_serve``), holding the GIL, so its stall
grows with what the process holds: measured on this machine, 2,000 open ``ticketEvents`` subscriptions are
~130,000 tracked objects and a full pass over them ~100 ms on a quiet core. While such a population grows
(one tenant opening its subscriptions), the quarter rule fires again and again — 7 full passes while 2,000
subscriptions opened — and every tenant's requests wait through each of them.

:class:`FullCollectionPacer` keeps Python's rule but applies it at most once per ``min_interval`` seconds:
automatic full passes are switched off (the generation-2 threshold is raised out of reach; young and middle
generations are collected as before, and their passes are bounded by their thresholds), and a loop checks
every ``check_interval`` seconds whether the oldest generation grew by more than a quarter since the last
full pass, and if so runs one. The stall of a pass is unchanged; how often one can happen is bounded. The
price: cyclic garbage that reached the oldest generation lives up to ``min_interval`` seconds longer.

Installed only by server processes (``bookbag serve`` and its workers), never at import, and undone on
shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("bookbag.gc")

# Python's own generation-2 threshold is a count of middle-generation passes; this one is never reached.
_OUT_OF_REACH = 2**30


def oldest_generation_size() -> int:
    """Tracked objects in generation 2 (a list of references: ~1 ms per 100,000 objects)."""
    return len(gc.get_objects(generation=2))


class FullCollectionPacer:
    """Runs full collections itself, at most once per ``min_interval`` seconds (see the module docstring)."""

    def __init__(
        self,
        min_interval: float,
        *,
        check_interval: float = 1.0,
        growth: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        collect: Callable[[int], int] = gc.collect,
        generation_size: Callable[[], int] = oldest_generation_size,
    ) -> None:
        if min_interval <= 0:
            raise ValueError("min_interval must be positive")
        self.min_interval = min_interval
        self.check_interval = min(check_interval, min_interval)
        self.growth = growth
        self._clock = clock
        self._collect = collect
        self._generation_size = generation_size
        self._saved_thresholds: tuple[int, int, int] | None = None
        self._last_full = clock()
        self._baseline = 0
        self.full_collections = 0
        self.longest_seconds = 0.0

    def install(self) -> None:
        """Switch Python's automatic full passes off (idempotent); :meth:`uninstall` restores them."""
        if self._saved_thresholds is not None:
            return
        young, middle, oldest = gc.get_threshold()
        self._saved_thresholds = (young, middle, oldest)
        gc.set_threshold(young, middle, _OUT_OF_REACH)
        self._baseline = self._generation_size()
        self._last_full = self._clock()

    def uninstall(self) -> None:
        if self._saved_thresholds is None:
            return
        gc.set_threshold(*self._saved_thresholds)
        self._saved_thresholds = None

    def due(self) -> bool:
        """Python's quarter rule, at most once per ``min_interval``."""
        if self._clock() - self._last_full < self.min_interval:
            return False
        return self._generation_size() > self._baseline * (1 + self.growth)

    def collect_now(self) -> None:
        started = time.perf_counter()
        self._collect(2)
        took = time.perf_counter() - started
        self._baseline = self._generation_size()
        self._last_full = self._clock()
        self.full_collections += 1
        self.longest_seconds = max(self.longest_seconds, took)
        log.debug("full collection took %.1f ms; %d objects remain", took * 1000, self._baseline)

    def check(self) -> bool:
        """One check: collect if due. Whether it collected."""
        if self.due():
            self.collect_now()
            return True
        return False

    async def run(self) -> None:
        """Check every ``check_interval`` seconds until cancelled; Python's schedule is back afterwards."""
        self.install()
        try:
            while True:
                await asyncio.sleep(self.check_interval)
                self.check()
        finally:
            self.uninstall()
