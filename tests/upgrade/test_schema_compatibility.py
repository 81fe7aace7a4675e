"""The rules a migration follows to stay rolling-safe, checked on the schema itself.

The database is taken to the previous release's newest migration, read, taken to this
checkout's head and read again. Everything the previous release's code reads or writes
must still be there as it was: no table or column dropped or renamed, no type changed, no
column made NOT NULL, and every column added to an existing table nullable or given a
server default (the old code's INSERTs do not name it). New tables are free: old code
does not know them. The rolling-upgrade test (test_rolling_upgrade.py) shows the same
under load; this one also covers the tables the load does not touch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect

from rules_service.adapters import migrations_runner
from tests.conftest import throwaway_database
from tests.upgrade.release import extract_release, newest_migration, previous_release


@dataclass(frozen=True)
class Column:
    """What old code relies on in one column."""

    type: str
    nullable: bool
    has_default: bool


@dataclass(frozen=True)
class Table:
    """What old code relies on in one table: its columns and its unique keys (an
    ``INSERT ... ON CONFLICT`` names one)."""

    columns: dict[str, Column]
    unique: frozenset[tuple[str, ...]] = frozenset()


Schema = dict[str, Table]


def _unique_keys(inspector: Any, table: str) -> frozenset[tuple[str, ...]]:
    keys = {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
    keys |= {tuple(i["column_names"]) for i in inspector.get_indexes(table)
             if i.get("unique") and None not in i["column_names"]}
    primary = inspector.get_pk_constraint(table)["constrained_columns"]
    if primary:
        keys.add(tuple(primary))
    return frozenset(keys)


def read_schema(engine: Engine) -> Schema:
    """Every table's columns and unique keys (Alembic's own bookkeeping left out)."""
    inspector = inspect(engine)
    dialect = engine.dialect
    return {table: Table({c["name"]: Column(c["type"].compile(dialect=dialect),
                                            bool(c["nullable"]),
                                            c.get("default") is not None or
                                            c.get("autoincrement") is True or
                                            c.get("computed") is not None)
                          for c in inspector.get_columns(table)},
                         _unique_keys(inspector, table))
            for table in inspector.get_table_names() if table != "alembic_version"}


def rolling_problems(old: Schema, new: Schema) -> list[str]:
    """Every way ``new`` would break code written for ``old``."""
    problems = []
    for table, was in sorted(old.items()):
        if table not in new:
            problems.append(f"table {table} was dropped or renamed")
            continue
        columns, now = was.columns, new[table].columns
        for name, before in sorted(columns.items()):
            after = now.get(name)
            if after is None:
                problems.append(f"column {table}.{name} was dropped or renamed")
            elif after.type != before.type:
                problems.append(f"column {table}.{name} changed type from {before.type} to "
                                f"{after.type}")
            elif before.nullable and not after.nullable:
                problems.append(f"column {table}.{name} became NOT NULL")
        for name in sorted(set(now) - set(columns)):
            added = now[name]
            if not added.nullable and not added.has_default:
                problems.append(f"column {table}.{name} was added NOT NULL without a server "
                                "default: the old code's inserts do not name it")
        for key in sorted(was.unique - new[table].unique):
            problems.append(f"unique key ({', '.join(key)}) of {table} was dropped: the old "
                            "code's ON CONFLICT may name it")
    return problems


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Schema, Schema]]:
    """(the previous release's newest migration, its schema, the schema at the head)."""
    tree = extract_release(previous_release(), tmp_path_factory.mktemp("previous-release"))
    old_head = newest_migration(tree)
    with throwaway_database(tmp_path_factory.mktemp("schema")) as url:
        engine = create_engine(url)
        try:
            migrations_runner.upgrade(url, old_head)
            old = read_schema(engine)
            migrations_runner.upgrade(url, "head")
            yield old_head, old, read_schema(engine)
        finally:
            engine.dispose()


def test_the_head_keeps_everything_the_previous_release_uses(
        schemas: tuple[str, Schema, Schema]) -> None:
    old_head, old, new = schemas
    assert old, f"no tables at {old_head}"
    problems = rolling_problems(old, new)
    assert problems == [], "\n".join(problems)


def _schema(**tables: dict[str, Column]) -> Schema:
    return {name: Table(columns, frozenset({("a",)})) for name, columns in tables.items()}


NULLABLE_TEXT = Column("TEXT", nullable=True, has_default=False)
REQUIRED_INT = Column("INTEGER", nullable=False, has_default=False)


@pytest.mark.parametrize(("new", "problem"), [
    ({}, "table t was dropped or renamed"),
    ({"t": {"a": REQUIRED_INT}}, "column t.b was dropped or renamed"),
    ({"t": {"a": REQUIRED_INT, "b": Column("INTEGER", True, False)}},
     "column t.b changed type from TEXT to INTEGER"),
    ({"t": {"a": REQUIRED_INT, "b": Column("TEXT", False, True)}}, "column t.b became NOT NULL"),
    ({"t": {"a": REQUIRED_INT, "b": NULLABLE_TEXT, "c": REQUIRED_INT}},
     "column t.c was added NOT NULL without a server default"),
])
def test_each_breaking_change_is_named(new: dict[str, dict[str, Column]], problem: str,
                                       ) -> None:
    old = _schema(t={"a": REQUIRED_INT, "b": NULLABLE_TEXT})
    found = rolling_problems(old, _schema(**new))
    assert len(found) == 1 and found[0].startswith(problem), found


def test_a_dropped_unique_key_is_named() -> None:
    old = _schema(t={"a": REQUIRED_INT})
    new = {"t": Table({"a": REQUIRED_INT})}
    assert rolling_problems(old, new) == [
        "unique key (a) of t was dropped: the old code's ON CONFLICT may name it"]


def test_additions_old_code_ignores_pass() -> None:
    old = _schema(t={"a": REQUIRED_INT})
    new = _schema(t={"a": REQUIRED_INT, "b": NULLABLE_TEXT,
                     "c": Column("BOOLEAN", nullable=False, has_default=True)},
                  u={"x": REQUIRED_INT})
    assert rolling_problems(old, new) == []

