"""Wires concrete classes together from Settings: engine, session factories, units of work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rules_service.adapters.database import (
    DatabaseTimeouts,
    make_engine,
    make_session_factory,
)
from rules_service.adapters.decision_log import GroupCommitWriter
from rules_service.adapters.orm import utcnow
from rules_service.adapters.rollup_fold import RollupFolder
from rules_service.adapters.seal_store import SealStore
from rules_service.adapters.unit_of_work import Clock, UnitOfWork, UnitOfWorkFactory
from rules_service.config import Settings
from rules_service.domain.evaluator import Evaluator
from rules_service.services.live import LiveState


@dataclass
class Container:
    """Everything a process needs to run use cases; build it once, close it at exit."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    readonly_session_factory: sessionmaker[Session]
    given_evaluator: Evaluator | None = None
    clock: Clock = utcnow
    _uow_factory: UnitOfWorkFactory = field(init=False, repr=False)
    _evaluator: Evaluator | None = field(init=False, repr=False, default=None)
    _schema_head: str | None = field(init=False, repr=False, default=None)
    live: LiveState = field(init=False, repr=False)
    decision_store: GroupCommitWriter = field(init=False, repr=False)
    rollup_folder: RollupFolder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._uow_factory = UnitOfWorkFactory(self.session_factory,
                                              self.readonly_session_factory, self.clock,
                                              on_live_change=self._live_changed)
        self._evaluator = self.given_evaluator
        # Their threads start on first use (the folder's with ``rollup_folder.start()``, by
        # the API and the worker), so building a container forks safely.
        self.live = LiveState(self._uow_factory, self.clock,
                              poll_interval_s=self.settings.live_poll_interval_s)
        self.decision_store = GroupCommitWriter(
            self.engine, wait_s=database_timeouts(self.settings).write_wait_s)
        self.rollup_folder = RollupFolder(self.engine)

    def _live_changed(self) -> None:
        self.live.invalidate()

    @property
    def evaluator(self) -> Evaluator:
        """The evaluator; the default one is built on first use (commands may need none)."""
        if self._evaluator is None:
            self._evaluator = default_evaluator(self.settings)
        return self._evaluator

    @property
    def schema_head(self) -> str | None:
        """The newest migration this code ships (read from the package once)."""
        if self._schema_head is None:
            from rules_service.adapters.migrations_runner import head_revision

            self._schema_head = head_revision(self.settings.database_url)
        return self._schema_head

    def seal_store(self) -> SealStore:
        """The seals of this database (``services.seals``)."""
        return SealStore(self.engine)

    def uow(self) -> UnitOfWork:
        """A fresh unit of work (one per request or thread: they are not thread-safe)."""
        return self._uow_factory()

    def close(self) -> None:
        """Releases the database connections and the evaluator's workers."""
        self.live.close()
        self.decision_store.close()
        self.rollup_folder.close()
        # A given evaluator belongs to the caller (tests share one pool across containers).
        if self.given_evaluator is None:
            closer: Any = getattr(self._evaluator, "close", None)
            if callable(closer):
                closer()
        self.engine.dispose()


def default_evaluator(settings: Settings) -> Evaluator:
    """The evaluator used when none is given: durable-rules in isolated worker processes."""
    from rules_service.engine import EnginePool

    return EnginePool(workers=settings.engine_workers, timeout_s=settings.engine_timeout_s,
                      recycle_after=settings.engine_max_evaluations_per_worker)


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    """How long this service waits for its database, from the settings."""
    return DatabaseTimeouts(connect_s=settings.database_connect_timeout_s,
                            statement_s=settings.database_statement_timeout_s,
                            pool_s=settings.database_pool_timeout_s,
                            keepalive_s=settings.database_keepalive_s)


def bootstrap(settings: Settings | None = None, *, evaluator: Evaluator | None = None,
              clock: Clock = utcnow) -> Container:
    """A container for the settings (default: from the environment)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url,
                         sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
                         echo=settings.database_echo, timeouts=database_timeouts(settings))
    return Container(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        readonly_session_factory=make_session_factory(engine, readonly=True),
        given_evaluator=evaluator,
        clock=clock,
    )
