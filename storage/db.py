"""Engine creation and the unit of work.

``Database.unit_of_work()`` yields one session, commits once at the end (or rolls back on error), and only
after a successful commit runs the callbacks registered with :func:`after_commit` — which is how events
are published after the data they describe is durable, and never for a rolled-back change. A failure of
the COMMIT itself is raised as :class:`CommitFailed`, apart from the errors of the statements before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlmodel import Session, SQLModel, create_engine

log = logging.getLogger(__name__)

_AFTER_COMMIT = "bookbag_after_commit"
SQLITE_BUSY_TIMEOUT_S = 30
_PENDING_ROWS = "bookbag_pending_rows"
_DEFERS_ROWS = "bookbag_defers_rows"
_BEFORE_COMMIT = "bookbag_before_commit"
_TOUCHED_TICKETS = "bookbag_touched_tickets"
_CREATED_TICKETS = "bookbag_created_tickets"
_ADDED_TICKET_ROWS = "bookbag_added_ticket_rows"
_WRITTEN_ROWS = "bookbag_written_rows"
_UNIT_NOTES = (_TOUCHED_TICKETS, _CREATED_TICKETS, _ADDED_TICKET_ROWS, _WRITTEN_ROWS)


class CommitFailed(Exception):
    """COMMIT itself failed (every statement before it had succeeded): whether the transaction took effect
    is not known — a lost connection can hide a commit that happened — so the work must not be rerun as if
    nothing had been written."""


def normalize_url(url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` spellings and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url_for(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'bookbag.sqlite3').resolve()}"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, for_writes: bool = True) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if for_writes:
            _queue_sqlite_writers(engine)
        else:
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _queue_sqlite_writers(engine: Engine) -> None:
    """SQLite has one writer at a time. Its default deferred BEGIN lets two writers both read, then deadlock
    on the upgrade; BEGIN IMMEDIATE takes the write lock up front. Writers of this process also queue on a
    lock of their own first: a waiter wakes the moment the lock is free, where SQLite's busy handler sleeps
    in steps of up to 100 ms (which, under load, idles the database and stretches the tail latency). Other
    processes still wait through ``busy_timeout``."""
    writer = threading.Lock()
    held = "bookbag_writer_lock"

    def begin(conn: Connection) -> None:
        if not writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise TimeoutError(f"waited {SQLITE_BUSY_TIMEOUT_S} s for the database write lock")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writer.release()
            raise
        conn.info[held] = True

    def finish(conn: Connection, statement: str) -> None:
        # Connection events fire *before* the DBAPI commit/rollback; end the transaction here (pysqlite's own
        # commit()/rollback() that follow are no-ops without an open transaction), then let the next writer in.
        if conn.info.get(held):
            driver = conn.connection.driver_connection
            if driver is not None and driver.in_transaction:
                driver.execute(statement)  # a failing COMMIT keeps the lock until the rollback that follows
            conn.info.pop(held)
            writer.release()

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", lambda conn: finish(conn, "COMMIT"))
    event.listen(engine, "rollback", lambda conn: finish(conn, "ROLLBACK"))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit transactions get in the way).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.close()


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's unit of work has committed; dropped on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def before_commit(session: Session, name: str, callback: Callable[[Session], None]) -> bool:
    """Run ``callback(session)`` once, just before the unit of work commits (after its other statements,
    before the rows of :func:`insert_later`); registering the same ``name`` again in one transaction does
    nothing (returns False). Dropped on rollback. Outside a :class:`Database` unit of work it runs at once."""
    if not session.info.get(_DEFERS_ROWS):
        callback(session)
        return True
    registered: dict[str, Callable[[Session], None]] = session.info.setdefault(_BEFORE_COMMIT, {})
    if name in registered:
        return False
    registered[name] = callback
    return True


def _run_before_commit(session: Session) -> None:
    for callback in session.info.pop(_BEFORE_COMMIT, {}).values():
        callback(session)


def insert_later(session: Session, model: type[SQLModel], row: dict[str, Any]) -> None:
    """Add one row to an append-only log table (audit entries, stage transitions) without an ORM object.

    In a :class:`Database` session the rows are written with one multi-row INSERT per table, after the ORM
    flush, before the session's next statement and before commit, so reads in the same unit of work see
    them; in any other session they are written at once. ``row`` holds every column but the generated id.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    if not session.info.get(_DEFERS_ROWS):
        session.flush()
        session.execute(insert(table), [row])
        return
    session.info.setdefault(_PENDING_ROWS, {}).setdefault(table, []).append(row)


def write_pending_rows(session: Session) -> None:
    """Write the rows :func:`insert_later` queued (after flushing ORM objects they may refer to)."""
    pending: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_PENDING_ROWS, None)
    if not pending:
        return
    session.flush()
    written: dict[Table, list[dict[str, Any]]] | None = session.info.get(_WRITTEN_ROWS)
    for table, rows in pending.items():
        session.execute(insert(table), rows)
        if written is not None:
            written.setdefault(table, []).extend(rows)


def written_rows(session: Session, model: type[SQLModel]) -> list[dict[str, Any]]:
    """The rows :func:`insert_later` has written so far in this unit of work to ``model``'s table (the
    dicts it was given; empty outside a :class:`Database` unit of work)."""
    written: dict[Table, list[dict[str, Any]]] = session.info.get(_WRITTEN_ROWS, {})
    return written.get(model.__table__, [])  # type: ignore[attr-defined]


def _before_statement(state: ORMExecuteState) -> None:
    write_pending_rows(state.session)  # type: ignore[arg-type]


def _note_touched_tickets(session: Session, _context: Any, _instances: Any) -> None:
    """Before each flush: remember which tickets this unit of work changed (the ticket itself, or a row
    that belongs to it), which it created, and the ORM objects it added that belong to a ticket, for the
    commit hooks (:meth:`Database.add_commit_hook`)."""
    touched: set[str] = session.info.setdefault(_TOUCHED_TICKETS, set())
    for obj in session.new:
        if getattr(obj, "__tablename__", None) == "tickets":
            touched.add(obj.id)
            session.info.setdefault(_CREATED_TICKETS, {})[obj.id] = obj
        elif isinstance(ticket_id := getattr(obj, "ticket_id", None), str):
            touched.add(ticket_id)
            session.info.setdefault(_ADDED_TICKET_ROWS, []).append(obj)
    for obj in session.dirty:
        if getattr(obj, "__tablename__", None) == "tickets":
            touched.add(obj.id)
        elif isinstance(ticket_id := getattr(obj, "ticket_id", None), str):
            touched.add(ticket_id)


def touched_tickets(session: Session) -> set[str]:
    """The ids of the tickets this unit of work changed through the ORM (or named with :func:`touch_ticket`)."""
    touched: set[str] = session.info.get(_TOUCHED_TICKETS, set())
    return touched


def created_tickets(session: Session) -> dict[str, Any]:
    """The tickets this unit of work created through the ORM (their ids are among
    :func:`touched_tickets`), by id: nothing outside the transaction has seen them yet."""
    created: dict[str, Any] = session.info.get(_CREATED_TICKETS, {})
    return created


def added_ticket_rows(session: Session) -> list[Any]:
    """The ORM objects with a ``ticket_id`` this unit of work added (actions, corrections, messages...),
    as they are now."""
    added: list[Any] = session.info.get(_ADDED_TICKET_ROWS, [])
    return added


def touch_ticket(session: Session, ticket_id: str) -> None:
    """Count ``ticket_id`` as changed by this unit of work (for changes made with Core statements)."""
    session.info.setdefault(_TOUCHED_TICKETS, set()).add(ticket_id)


class Database:
    """An engine plus a session factory; the one place that commits."""

    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self._sessions = sessionmaker(
            bind=engine, class_=Session, expire_on_commit=False, info={_DEFERS_ROWS: True}
        )
        event.listen(self._sessions, "do_orm_execute", _before_statement)
        event.listen(self._sessions, "before_flush", _note_touched_tickets)
        self._commit_hooks: dict[str, Callable[[Session], None]] = {}
        self._read_sessions = sessionmaker(bind=self.read_engine, class_=Session, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        engine = make_engine(url, echo=echo)
        if engine.dialect.name == "sqlite":
            return cls(engine, make_engine(url, echo=echo, for_writes=False))
        return cls(engine)

    def add_commit_hook(self, name: str, hook: Callable[[Session], None]) -> None:
        """Run ``hook(session)`` at the end of every unit of work of this database, after its other work
        and before COMMIT, in the same transaction (a failing hook rolls the unit of work back). Adding a
        name again replaces the hook."""
        self._commit_hooks[name] = hook

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        session = self._sessions()
        session.info[_WRITTEN_ROWS] = {}
        try:
            yield session
            _run_before_commit(session)
            write_pending_rows(session)
            if self._commit_hooks:
                session.flush()  # the last ORM changes are noted as touched tickets
                for hook in self._commit_hooks.values():
                    hook(session)
                write_pending_rows(session)
            session.flush()  # every statement has run (and any constraint failed) before COMMIT
            try:
                session.commit()
            except Exception as exc:
                raise CommitFailed("the database refused or lost the COMMIT") from exc
        except BaseException:
            session.rollback()
            session.info.pop(_AFTER_COMMIT, None)
            session.info.pop(_BEFORE_COMMIT, None)
            session.info.pop(_PENDING_ROWS, None)
            raise
        finally:
            for note in _UNIT_NOTES:
                session.info.pop(note, None)
            callbacks = session.info.pop(_AFTER_COMMIT, [])
            session.close()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a subscriber's failure must not fail the committed request
                log.exception("after-commit callback failed")

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A session for reads that never writes (and never takes SQLite's write lock).

        Closing (not rolling back) ends the transaction without expiring what was loaded, so the rows it
        returned stay readable after the block.
        """
        session = self._read_sessions()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
