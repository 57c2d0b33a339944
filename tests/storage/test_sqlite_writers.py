"""SQLite writers of one process queue on a lock (no busy-handler sleeps), and the lock is always released."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlmodel import func, select

from storage.db import Database
from storage.migrate import upgrade
from storage.tables import Merchant
from workflow.tenancy.merchants import create_merchant


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    upgrade(db.engine)
    return db


def _count(db: Database) -> int:
    with db.read_only() as session:
        return int(session.exec(select(func.count()).select_from(Merchant)).one())


def test_concurrent_writers_all_commit(sqlite_db: Database) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with sqlite_db.unit_of_work() as session:
                    create_merchant(session, name=f"w{n}-{i}", slug=f"w{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert _count(sqlite_db) == 8 * 15


def test_a_failed_or_read_only_unit_of_work_releases_the_write_lock(sqlite_db: Database) -> None:
    with pytest.raises(RuntimeError), sqlite_db.unit_of_work() as session:
        create_merchant(session, name="lost", slug="lost")
        session.flush()
        raise RuntimeError("boom")
    with sqlite_db.unit_of_work() as session:  # began (took the lock) but wrote nothing
        session.exec(select(Merchant)).all()
    done = threading.Event()

    def other_thread() -> None:
        with sqlite_db.unit_of_work() as session:
            create_merchant(session, name="kept", slug="kept")
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=10)
    assert done.is_set(), "the write lock was not released"
    assert _count(sqlite_db) == 1
