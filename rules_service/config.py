"""Settings from the environment: nothing is read at import time."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATABASE_FILE = Path("instance") / "rules-service.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
MIN_SECRET_KEY_LENGTH = 32
"""Shortest ``RULES_SERVICE_SECRET_KEY`` accepted: a short key can be guessed offline
from one signed session cookie."""


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


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...],
               *, upper: bool = False) -> str:
    """One of ``choices`` (case-insensitive): the default when unset or blank."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: the default when unset or blank; SettingsError for other words."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{name} must be one of {', '.join(TRUE_WORDS + FALSE_WORDS)}, "
                        f"got {raw!r}")


def env_secret_key(env: Mapping[str, str]) -> str:
    """``RULES_SERVICE_SECRET_KEY``, at least ``MIN_SECRET_KEY_LENGTH`` characters; a random
    key of this process when unset (gunicorn's master sets one shared by its workers)."""
    raw = env.get("RULES_SERVICE_SECRET_KEY", "").strip()
    if not raw:
        return secrets.token_hex(32)
    if len(raw) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(f"RULES_SERVICE_SECRET_KEY must be at least "
                            f"{MIN_SECRET_KEY_LENGTH} characters, got {len(raw)}; make one "
                            f"with: python3 -c 'import secrets; print(secrets.token_hex(32))'")
    return raw


def env_base_url(env: Mapping[str, str], name: str = "RULES_SERVICE_BASE_URL") -> str:
    """An http(s) address people reach the pages at (``RULES_SERVICE_BASE_URL``), without
    its trailing slash; "" when unset. SettingsError for anything else."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or "@" in parts.netloc or any(c.isspace() for c in raw):
        raise SettingsError(f"{name} must be an http:// or https:// address like "
                            f"https://rules.example.com, got {raw!r}")
    return raw.rstrip("/")


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


def allow_entry_problem(entry: str) -> str | None:
    """Why an entry of ``RULES_SERVICE_WEBHOOK_ALLOW`` cannot be used (None: it can)."""
    if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
        try:
            ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            return f"{entry!r} is not an address or CIDR range"
        return None
    if not _HOST_NAME.fullmatch(entry):
        return f"{entry!r} is not a host name, address or CIDR range"
    return None


def env_webhook_allow(env: Mapping[str, str]) -> tuple[str, ...]:
    """``RULES_SERVICE_WEBHOOK_ALLOW``: comma-separated hosts and CIDR ranges webhooks may
    reach although they are loopback, link-local or private."""
    entries = tuple(e.strip() for e in env.get("RULES_SERVICE_WEBHOOK_ALLOW", "").split(",")
                    if e.strip())
    problems = [p for p in map(allow_entry_problem, entries) if p]
    if problems:
        raise SettingsError("RULES_SERVICE_WEBHOOK_ALLOW: " + "; ".join(problems))
    return entries


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
    sqlite_busy_timeout_s: float = 5.0
    database_connect_timeout_s: float = 5.0
    database_statement_timeout_s: float = 10.0
    database_pool_timeout_s: float = 5.0
    database_keepalive_s: int = 10
    database_echo: bool = False
    batch_limit: int = 1000
    live_poll_interval_s: float = 0.2
    # Logs (api/request_log.py) and tracing (api/tracing.py, the ``otel`` extra).
    log_level: str = "INFO"
    log_format: str = "json"
    otel: bool = False
    # /openapi.json and /docs without a token or session (RULES_SERVICE_PUBLIC_DOCS).
    public_docs: bool = False
    # Session cookies marked Secure even when the request arrived as plain http
    # (RULES_SERVICE_SECURE_COOKIES): behind a proxy that terminates TLS.
    secure_cookies: bool = False
    # Days of decisions kept by ``rules-service db retention`` (0: kept forever).
    retention_days: int = 0
    # The address people reach the pages at (RULES_SERVICE_BASE_URL), no trailing slash:
    # absolute links in notices and Markdown point there, never at a request's Host header.
    # Empty: no links.
    base_url: str = ""
    # A folder the worker writes email to instead of sending it (RULES_SERVICE_MAIL_DIR):
    # the demo's local mail sink, shown at /mail. Empty: email goes out through SMTP.
    mail_dir: str = ""
    # Hosts and CIDR ranges webhooks may reach although internal (RULES_SERVICE_WEBHOOK_ALLOW).
    webhook_allow: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``RULES_SERVICE_*`` environment variables, defaults for the rest."""
        env = os.environ if env is None else env
        url = env.get("RULES_SERVICE_DATABASE_URL", "").strip() or default_database_url()
        return cls(
            database_url=url,
            # Without a configured key each process gets a random one: nothing persistent
            # depends on it (tokens are hashed with plain SHA-256).
            secret_key=env_secret_key(env),
            engine_workers=env_int(env, "RULES_SERVICE_ENGINE_WORKERS", cls.engine_workers, 1),
            engine_timeout_s=env_float(env, "RULES_SERVICE_ENGINE_TIMEOUT", cls.engine_timeout_s,
                                    0.01),
            engine_max_evaluations_per_worker=env_int(
                env, "RULES_SERVICE_ENGINE_MAX_EVALUATIONS_PER_WORKER",
                cls.engine_max_evaluations_per_worker, 1),
            sqlite_busy_timeout_s=env_float(env, "RULES_SERVICE_SQLITE_BUSY_TIMEOUT",
                                         cls.sqlite_busy_timeout_s, 0.0),
            database_connect_timeout_s=env_float(
                env, "RULES_SERVICE_DATABASE_CONNECT_TIMEOUT", cls.database_connect_timeout_s,
                1.0),
            database_statement_timeout_s=env_float(
                env, "RULES_SERVICE_DATABASE_STATEMENT_TIMEOUT",
                cls.database_statement_timeout_s, 0.0),
            database_pool_timeout_s=env_float(env, "RULES_SERVICE_DATABASE_POOL_TIMEOUT",
                                              cls.database_pool_timeout_s, 0.1),
            database_keepalive_s=env_int(env, "RULES_SERVICE_DATABASE_KEEPALIVE",
                                         cls.database_keepalive_s, 1),
            database_echo=env.get("RULES_SERVICE_DATABASE_ECHO", "").lower()
            in ("1", "true", "yes"),
            batch_limit=env_int(env, "RULES_SERVICE_BATCH_LIMIT", cls.batch_limit, 1),
            live_poll_interval_s=env_float(env, "RULES_SERVICE_LIVE_POLL_INTERVAL",
                                        cls.live_poll_interval_s, 0.01),
            log_level=env_choice(env, "RULES_SERVICE_LOG_LEVEL", cls.log_level, LOG_LEVELS,
                                 upper=True),
            log_format=env_choice(env, "RULES_SERVICE_LOG_FORMAT", cls.log_format, LOG_FORMATS),
            otel=env_bool(env, "RULES_SERVICE_OTEL", cls.otel),
            public_docs=env_bool(env, "RULES_SERVICE_PUBLIC_DOCS", cls.public_docs),
            secure_cookies=env_bool(env, "RULES_SERVICE_SECURE_COOKIES", cls.secure_cookies),
            retention_days=env_int(env, "RULES_SERVICE_RETENTION_DAYS", cls.retention_days, 0),
            base_url=env_base_url(env),
            mail_dir=env.get("RULES_SERVICE_MAIL_DIR", "").strip(),
            webhook_allow=env_webhook_allow(env),
        )
