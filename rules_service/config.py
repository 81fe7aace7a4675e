"""Settings from the environment (contract section 5): nothing is read at import time."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_FILE = Path("instance") / "rules-service.db"


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An integer setting: the default when unset or blank; SettingsError when unusable."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """A number setting: the default when unset or blank; SettingsError when unusable."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def default_database_url(cwd: Path | None = None) -> str:
    """The embedded default: an SQLite file under ``instance/`` of the current directory."""
    path = (cwd or Path.cwd()) / DEFAULT_DATABASE_FILE
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one running service."""

    database_url: str = field(default_factory=default_database_url)
    secret_key: str = ""
    engine_workers: int = 2
    engine_timeout_s: float = 2.0
    engine_max_evaluations_per_worker: int = 1_000_000
    sqlite_busy_timeout_s: float = 30.0
    database_echo: bool = False
    batch_limit: int = 1000
    live_poll_interval_s: float = 0.2
    # Days of decisions kept by ``rules-service db retention`` (0: kept forever).
    retention_days: int = 0

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite (the embedded default)."""
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``RULES_SERVICE_*`` environment variables, defaults for the rest."""
        env = os.environ if env is None else env
        url = env.get("RULES_SERVICE_DATABASE_URL", "").strip() or default_database_url()
        return cls(
            database_url=url,
            # Without a configured key each process gets a random one: nothing persistent
            # depends on it (tokens are hashed with plain SHA-256).
            secret_key=env.get("RULES_SERVICE_SECRET_KEY", "").strip()
            or secrets.token_hex(32),
            engine_workers=env_int(env, "RULES_SERVICE_ENGINE_WORKERS", cls.engine_workers, 1),
            engine_timeout_s=env_float(env, "RULES_SERVICE_ENGINE_TIMEOUT", cls.engine_timeout_s,
                                    0.01),
            engine_max_evaluations_per_worker=env_int(
                env, "RULES_SERVICE_ENGINE_MAX_EVALUATIONS_PER_WORKER",
                cls.engine_max_evaluations_per_worker, 1),
            sqlite_busy_timeout_s=env_float(env, "RULES_SERVICE_SQLITE_BUSY_TIMEOUT",
                                         cls.sqlite_busy_timeout_s, 0.0),
            database_echo=env.get("RULES_SERVICE_DATABASE_ECHO", "").lower()
            in ("1", "true", "yes"),
            batch_limit=env_int(env, "RULES_SERVICE_BATCH_LIMIT", cls.batch_limit, 1),
            live_poll_interval_s=env_float(env, "RULES_SERVICE_LIVE_POLL_INTERVAL",
                                        cls.live_poll_interval_s, 0.01),
            retention_days=env_int(env, "RULES_SERVICE_RETENTION_DAYS", cls.retention_days, 0),
        )
