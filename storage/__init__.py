"""Persistence: the database engine, units of work (sessions), SQLModel tables and Alembic migrations.

Nothing here knows about HTTP or GraphQL. Services in ``workflow/`` take a session from here and never
commit on their own; the edge (a request, a CLI command, a scheduler tick) commits once.
"""

from storage.db import Database, make_engine

__all__ = ["Database", "make_engine"]
