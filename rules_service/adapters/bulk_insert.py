"""Inserting many rows at once, by the fastest path each database offers.

On PostgreSQL, ``COPY .. FROM STDIN`` through psycopg streams the rows in the caller's
transaction with no statement per row and no parameter binding: for a batch of 1,000
decisions it costs the client and the server a fraction of ``INSERT`` run with many
parameter sets (bench/README.md has the figures). Below ``COPY_FROM`` rows a plain
``INSERT`` with its parameter sets (pipelined by psycopg, one round trip) is as quick,
and SQLite only has that.

Values go through the same conversions SQLAlchemy applies: JSON columns are serialised
with ``json.dumps``, timestamps are made aware UTC (``orm.UTCDateTime``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from sqlalchemy import JSON, Connection, Table, insert

from rules_service.adapters.orm import UTCDateTime

COPY_FROM = 64
"""Rows from which PostgreSQL inserts by COPY (fewer: one INSERT with many parameter sets)."""


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts the rows (each with the same keys) in the caller's transaction."""
    if not rows:
        return
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        _copy(connection, table, rows)
    else:
        connection.execute(insert(table), list(rows))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _converter(table: Table, name: str) -> Callable[[Any], Any] | None:
    column_type = table.c[name].type
    if isinstance(column_type, JSON):
        return json.dumps  # None too: SQLAlchemy's JSON stores it as JSON null
    if isinstance(column_type, UTCDateTime):
        return _utc
    return None


def _copy(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    names = list(rows[0])
    converted = [(i, f) for i, f in enumerate(_converter(table, n) for n in names) if f]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
    # The DBAPI connection of this Connection: COPY runs in its open transaction.
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            values = [row[n] for n in names]
            for i, convert in converted:
                values[i] = convert(values[i])
            copy.write_row(values)
