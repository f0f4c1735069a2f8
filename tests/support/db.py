"""Database helpers for tests."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["cap_statement_values"]


def cap_statement_values(engine: Engine, limit: int = 999) -> None:
    """On SQLite, let each connection take at most ``limit`` values per statement.

    SQLite's own default was 999 before 3.32 and is 32,766 since; Debian builds
    it with 250,000. A capped engine shows what a statement naming too many
    values does on such a build. PostgreSQL engines are left as they are.
    """
    if engine.dialect.name != "sqlite":
        return
    engine.dispose()  # connections made from here on get the cap

    def cap(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    sa.event.listen(engine, "connect", cap)
