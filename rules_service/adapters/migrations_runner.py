"""Runs the packaged Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from rules_service.adapters.database import make_engine


def migrations_dir() -> str:
    """Where the migration scripts are installed."""
    return str(resources.files("rules_service") / "migrations")


def alembic_config(url: str) -> Config:
    """An Alembic Config for the URL, with the packaged script location."""
    cfg = Config()
    cfg.set_main_option("script_location", migrations_dir())
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head", engine: Engine | None = None) -> None:
    """Creates or migrates the schema to ``revision``; on ``engine`` when given."""
    _ensure_sqlite_directory(url)
    cfg = alembic_config(url)
    if engine is None:
        command.upgrade(cfg, revision)
        return
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(url: str, revision: str) -> None:
    """Takes the schema back to ``revision`` (each migration's own downgrade, in one
    transaction each)."""
    command.downgrade(alembic_config(url), revision)


def known_revisions(url: str) -> set[str]:
    """Every revision the package ships."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: not migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@dataclass(frozen=True)
class Footprint:
    """What a database holds, read without migrating or writing anything.

    ``versions`` holds (ruleset, number, author, note) of every stored version.
    """

    revision: str | None
    tables: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    versions: tuple[tuple[str, int, str, str], ...] = ()
    revoked: tuple[str, ...] = ()

    @property
    def active_principals(self) -> set[str]:
        """Principals that exist and are not revoked."""
        return set(self.principals) - set(self.revoked)


def read_footprint(url: str) -> Footprint:
    """Tables, schema revision, principal names and versions of a database, read only.

    The columns read exist since the first revision, so an older schema is read as well.
    """
    _ensure_sqlite_directory(url)
    engine = make_engine(url)
    try:
        tables = tuple(sorted(inspect(engine).get_table_names()))
        revision = current_revision(engine) if "alembic_version" in tables else None
        if revision is None:
            return Footprint(None, tables)
        with engine.connect() as connection:
            people = connection.execute(
                text("SELECT name, revoked_at FROM principals ORDER BY id")).all()
            versions = tuple(
                (str(r.ruleset), int(r.number), str(r.author), str(r.note or ""))
                for r in connection.execute(text(
                    "SELECT r.name AS ruleset, v.number, v.author, v.note "
                    "FROM ruleset_versions v JOIN rulesets r ON r.id = v.ruleset_id "
                    "ORDER BY r.name, v.number")))
        return Footprint(revision, tables, tuple(p.name for p in people), versions,
                         tuple(p.name for p in people if p.revoked_at is not None))
    finally:
        engine.dispose()
