"""The unit of work: one session, one transaction; leaving without commit rolls back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from rules_service.adapters.database import HealthProbe
from rules_service.adapters.decision_log import DecisionWriter
from rules_service.adapters.escalations import EscalationRepository
from rules_service.adapters.heartbeats import HeartbeatRepository
from rules_service.adapters.orm import utcnow
from rules_service.adapters.outbox import OutboxRepository
from rules_service.adapters.principal_store import PrincipalStore
from rules_service.adapters.repositories import (
    ActorRepository,
    AuditRepository,
    DecisionRepository,
    LiveStateRepository,
    PrincipalRepository,
    RulesetRepository,
    VersionRepository,
)
from rules_service.adapters.rollup_queries import FigureQueries
from rules_service.adapters.shadows import ShadowRepository
from rules_service.adapters.sign_in_throttles import SignInThrottleStore
from rules_service.adapters.subscriptions import DeliveryRepository, SubscriptionRepository
from rules_service.adapters.weekly_reports import WeeklyReportLog

Clock = Callable[[], datetime]


class UnitOfWork:
    """One transaction over the repositories; re-enterable, one transaction at a time.

    A UnitOfWork instance is not thread-safe: make one per request (or per thread) with
    ``UnitOfWorkFactory``. Entering with ``readonly()`` takes no write lock on SQLite.
    """

    rulesets: RulesetRepository
    versions: VersionRepository
    audit: AuditRepository
    actors: ActorRepository
    outbox: OutboxRepository
    principals: PrincipalRepository
    decisions: DecisionRepository
    live: LiveStateRepository
    decision_log: DecisionWriter
    escalations: EscalationRepository
    subscriptions: SubscriptionRepository
    deliveries: DeliveryRepository
    people: PrincipalStore
    throttles: SignInThrottleStore
    health: HealthProbe
    figures: FigureQueries
    heartbeats: HeartbeatRepository
    weekly_reports: WeeklyReportLog
    shadows: ShadowRepository

    def __init__(self, session_factory: sessionmaker[Session],
                 readonly_session_factory: sessionmaker[Session] | None = None,
                 clock: Clock = utcnow, on_live_change: Callable[[], None] | None = None
                 ) -> None:
        self._session_factory = session_factory
        self._readonly_factory = readonly_session_factory or session_factory
        self._use_readonly = False
        self.clock = clock
        self._on_live_change = on_live_change
        self._live_changed = False
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """The session of the transaction in progress."""
        if self._session is None:
            raise RuntimeError("the unit of work is not entered")
        return self._session

    def readonly(self) -> UnitOfWork:
        """Marks the next transaction as read-only (no write lock on SQLite)."""
        self._use_readonly = True
        return self

    def __enter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("the unit of work is already entered")
        factory = self._readonly_factory if self._use_readonly else self._session_factory
        self._use_readonly = False
        self._session = factory()
        self.versions = VersionRepository(self._session)
        self.rulesets = RulesetRepository(self._session, self.versions)
        self.audit = AuditRepository(self._session)
        self.actors = ActorRepository(self._session)
        self.outbox = OutboxRepository(self._session)
        self.principals = PrincipalRepository(self._session)
        self.decisions = DecisionRepository(self._session)
        self.live = LiveStateRepository(self._session)
        self.decision_log = DecisionWriter(self._session)
        self.escalations = EscalationRepository(self._session)
        self.subscriptions = SubscriptionRepository(self._session)
        self.deliveries = DeliveryRepository(self._session)
        self.people = PrincipalStore(self._session)
        self.throttles = SignInThrottleStore(self._session)
        self.health = HealthProbe(self._session)
        self.figures = FigureQueries(self._session)
        self.heartbeats = HeartbeatRepository(self._session)
        self.weekly_reports = WeeklyReportLog(self._session)
        self.shadows = ShadowRepository(self._session)
        self._live_changed = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.rollback()
        finally:
            session.close()

    def commit(self) -> None:
        """Commits the transaction; a new one starts on the next query. When it changed
        what processes keep in memory (``live_changed``), this process reloads at once."""
        self.session.commit()
        if self._live_changed:
            self._live_changed = False
            if self._on_live_change is not None:
                self._on_live_change()

    def live_changed(self) -> None:
        """Announces, in this transaction, a change to active versions, schedules or
        principals: every process reloads its in-memory copy once it commits."""
        self.live.bump()
        self._live_changed = True

    def rollback(self) -> None:
        """Throws the transaction's changes away."""
        self.session.rollback()

    def now(self) -> datetime:
        """The current time from the unit of work's clock."""
        return self.clock()


class UnitOfWorkFactory:
    """Makes fresh units of work sharing one engine's session factories and clock."""

    def __init__(self, session_factory: sessionmaker[Session],
                 readonly_session_factory: sessionmaker[Session] | None = None,
                 clock: Clock = utcnow, on_live_change: Callable[[], None] | None = None
                 ) -> None:
        self.session_factory = session_factory
        self.readonly_session_factory = readonly_session_factory
        self.clock = clock
        self.on_live_change = on_live_change

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.readonly_session_factory, self.clock,
                          self.on_live_change)
