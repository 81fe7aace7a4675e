"""Inserting many rows at once, by the fastest path each database offers.

On PostgreSQL, ``COPY .. FROM STDIN`` through psycopg streams the rows in the caller's
transaction with no statement per row and no parameter binding: for a batch of 1,000
decisions it costs the client and the server a fraction of ``INSERT`` run with many
parameter sets (bench/README.md has the figures). Below ``COPY_FROM`` rows a plain
``INSERT`` with its parameter sets (pipelined by psycopg, one round trip) is as quick,
and SQLite only has that.

That ``INSERT`` is compiled once per table, column list and database kind and then sent
as driver SQL with the values passed through each column type's own bind processor (what
SQLAlchemy applies itself): the decision path writes a few small inserts per commit, and
building, caching and compiling the statement each time cost more than the database's
own work (about 50 us of CPU per statement, measured in bench/README.md).

Values go through the same conversions SQLAlchemy applies: JSON columns are serialised
with ``json.dumps``, timestamps are made aware UTC (``orm.UTCDateTime``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from sqlalchemy import JSON, Connection, Dialect, Table, insert
from sqlalchemy.sql.schema import ScalarElementColumnDefault

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
        prepared = _prepared(connection.dialect, table, tuple(rows[0]))
        if prepared is None:
            connection.execute(insert(table), list(rows))
        else:
            connection.exec_driver_sql(prepared.sql, [prepared.parameters(r) for r in rows])


@dataclass(frozen=True)
class _PreparedInsert:
    """An INSERT of some columns of a table, compiled for one kind of database."""

    sql: str
    names: tuple[str, ...]
    """The parameters in the order the SQL takes them."""
    processors: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    """The row's columns and their bind processors."""
    defaults: dict[str, Any]
    """Columns the row leaves out, with their (processed) scalar defaults."""
    positional: bool

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The row's values as the driver takes them."""
        values = dict(self.defaults)
        for name, process in self.processors:
            values[name] = row[name] if process is None else process(row[name])
        return tuple(values[n] for n in self.names) if self.positional else values


_PREPARED: dict[tuple[str, str, tuple[str, ...]], _PreparedInsert | None] = {}
_PREPARING = threading.Lock()


def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


def _prepared(dialect: Dialect, table: Table, names: tuple[str, ...]
              ) -> _PreparedInsert | None:
    """The compiled INSERT of these columns; None when the statement takes a parameter that
    is neither in the row nor a column's scalar default (SQLAlchemy then inserts it)."""
    key = (dialect.name, table.name, names)
    if key in _PREPARED:
        return _PREPARED[key]
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    order = tuple(compiled.positiontup or ()) if compiled.positional \
        else tuple(compiled.binds)
    defaults: dict[str, Any] = {}
    prepared: _PreparedInsert | None = None
    for name in order:
        if name in names:
            continue
        default = table.c[name].default if name in table.c else None
        if not isinstance(default, ScalarElementColumnDefault):
            break
        process = _processor(table, name, dialect)
        defaults[name] = default.arg if process is None else process(default.arg)
    else:
        processors = tuple((name, _processor(table, name, dialect)) for name in names)
        prepared = _PreparedInsert(compiled.string, order, processors, defaults,
                                   compiled.positional)
    with _PREPARING:
        return _PREPARED.setdefault(key, prepared)


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
