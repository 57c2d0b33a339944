"""Full collections at a bounded rate (bookbag.gc_pacing): Python's quarter rule, at most once per interval."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bookbag.gc_pacing import FullCollectionPacer


class FakeHeap:
    def __init__(self) -> None:
        self.now = 0.0
        self.size = 1000
        self.collections: list[float] = []

    def collect(self, generation: int) -> int:
        assert generation == 2
        self.collections.append(self.now)
        self.size = 1000  # what survives: the long-lived objects
        return 0


def pacer(heap: FakeHeap, interval: float = 30.0) -> FullCollectionPacer:
    return FullCollectionPacer(
        interval, clock=lambda: heap.now, collect=heap.collect, generation_size=lambda: heap.size
    )


def test_a_growing_heap_is_collected_at_most_once_per_interval() -> None:
    heap = FakeHeap()
    p = pacer(heap)
    p.install()
    try:
        # The oldest generation grows by half every second for a minute (a tenant opening subscriptions).
        for second in range(1, 61):
            heap.now = float(second)
            heap.size = int(heap.size * 1.5)
            p.check()
        assert heap.collections == [30.0, 60.0]
        assert p.full_collections == 2
    finally:
        p.uninstall()


def test_no_full_collection_while_the_heap_stays_within_a_quarter_of_its_size() -> None:
    heap = FakeHeap()
    p = pacer(heap, interval=5.0)
    p.install()
    try:
        for second in range(1, 100):
            heap.now = float(second)
            heap.size = 1000 + (second % 3) * 100  # churn within 25 %
            p.check()
        assert heap.collections == []
        heap.now, heap.size = 200.0, 1251
        assert p.check() is True
        assert heap.collections == [200.0]
    finally:
        p.uninstall()


def test_install_switches_automatic_full_collections_off_and_uninstall_restores_them() -> None:
    before = gc.get_threshold()
    p = FullCollectionPacer(30.0)
    p.install()
    p.install()  # idempotent
    try:
        young, middle, oldest = gc.get_threshold()
        assert (young, middle) == before[:2]
        assert oldest > 1_000_000
    finally:
        p.uninstall()
    assert gc.get_threshold() == before


def test_the_loop_collects_for_real_and_restores_the_thresholds_when_cancelled() -> None:
    before = gc.get_threshold()

    async def scenario() -> FullCollectionPacer:
        p = FullCollectionPacer(0.05, check_interval=0.01, growth=0.0)
        task = asyncio.create_task(p.run())
        await asyncio.sleep(0)  # installed: the oldest generation's size is measured now
        garbage = []
        for _ in range(20):
            node: list[object] = []
            node.append(node)  # a cycle only the collector frees
            garbage.append(node)
        gc.collect(1)  # into the oldest generation
        garbage.clear()
        for _ in range(1000):  # ten seconds at most
            if p.full_collections:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return p

    p = asyncio.run(scenario())
    assert p.full_collections >= 1
    assert gc.get_threshold() == before


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        FullCollectionPacer(0)


@pytest.mark.parametrize("interval", [0.0, 12.0])
def test_a_server_process_paces_full_collections_as_its_setting_says(
    interval: float, fresh_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookbag.app import create_app
    from bookbag.server import prepare_to_serve
    from bookbag.settings import Settings

    monkeypatch.setattr(gc, "freeze", lambda: None)  # keep the test process's own heap collectable
    settings = Settings(
        database_url=fresh_sqlite_url,
        gc_full_collection_min_interval_seconds=interval,
        env="test",
        heavy_in_processes=False,
    )
    app = create_app(settings)
    prepare_to_serve(app)
    pacer = app.state.bookbag.gc_pacer
    if interval == 0:
        assert pacer is None
    else:
        assert pacer is not None and pacer.min_interval == 12.0
