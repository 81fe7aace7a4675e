"""What the evaluate path keeps in process memory: active versions (parsed and compiled),
the pauses in force, token hashes and the next scheduled activation, so a warm evaluate
reads no database.

Freshness: every change to these (a transition of any version, a pause or resume, a
principal or token created or revoked) bumps a generation counter in the same transaction
(``UnitOfWork.live_changed``). The process that made the change reloads as soon as it
commits; every other process (and instance) polls the counter every ``poll_interval_s``
in a background thread and reloads when it moved. A change therefore reaches every process
within ``poll_interval_s`` plus one reload: ``FRESHNESS_BOUND_S``, one second, with the
default interval. A scheduled version needs no poll at all: the process knows the next
``effective_at`` and activates at the first request at or after it.

A name or token the snapshot does not know is looked up in the database (a ruleset or
token created a moment ago must not wait for the poll), so a miss is never wrong, only
slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from rules_service.adapters.database import DatabaseUnavailable, is_unavailable
from rules_service.adapters.unit_of_work import Clock, UnitOfWork
from rules_service.domain.errors import Conflict
from rules_service.domain.pause import Pause
from rules_service.domain.versions import LoadedVersion
from rules_service.services import governance, principals

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 0.2
FRESHNESS_BOUND_S = 1.0
"""A change made through one process is seen by every other within this many seconds."""

RECORDABLE_STATUSES = ("active", "superseded")
"""Versions whose decisions may be recorded: those that went live through sign-off. A
version never leaves these statuses once in them, so a pinned one can be kept forever."""


@dataclass(frozen=True)
class LivePrincipal:
    """An authenticated caller, as the API needs it."""

    name: str
    is_admin: bool
    is_automation: bool


@dataclass(frozen=True)
class _Snapshot:
    generation: int
    ruleset_ids: dict[str, int]
    active: dict[str, LoadedVersion]
    pauses: dict[str, Pause]
    tokens: dict[str, LivePrincipal]
    next_due: datetime | None
    epoch: int
    """The process's invalidation count when loading began: a snapshot is current only
    while no invalidation has happened since."""


@dataclass
class LiveState:
    """The in-memory copy one process evaluates from; thread-safe, built per process."""

    uow_factory: Callable[[], UnitOfWork]
    clock: Clock
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    _snapshot: _Snapshot | None = field(default=None, init=False)
    _epoch: int = field(default=0, init=False)
    _pinned: dict[tuple[str, int], LoadedVersion] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _failed: tuple[float, BaseException] | None = field(default=None, init=False)
    """When the last load failed because the database was unavailable, and why."""
    _poller: threading.Thread | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    reloads: int = field(default=0, init=False)

    # ------------------------------------------------------------------ what evaluate asks

    def deciding_version(self, name: str, version: int | None, *,
                         dry_run: bool) -> LoadedVersion:
        """The version that decides: the active one, or a pinned one. 404 unknown ruleset or
        version; 409 no active version, or a recorded decision pinned to a version that
        never went live."""
        if version is not None:
            return self._pinned_version(name, version, dry_run=dry_run)
        snap = self._current()
        loaded = snap.active.get(name)
        if loaded is not None:
            return loaded
        if name in snap.ruleset_ids:
            raise Conflict("no_active_version", f"ruleset {name} has no active version")
        # Unknown here: perhaps created since the last reload. Ask the database.
        return governance.load_version(self.uow_factory(), name)

    def pause_of(self, name: str) -> Pause | None:
        """The pause in force on ruleset ``name`` as this process last saw it (within the
        freshness bound), or None."""
        return self._current().pauses.get(name)

    def principal(self, token: str) -> LivePrincipal | None:
        """Who a bearer token belongs to, or None (unknown or revoked)."""
        if not token or len(token) > principals.MAX_TOKEN_LENGTH:
            return None
        found = self._current().tokens.get(principals.hash_token(token))
        if found is not None:
            return found
        # Not in memory: perhaps issued since the last reload. Ask the database.
        view = principals.authenticate(self.uow_factory(), token)
        return None if view is None else LivePrincipal(view.name, view.is_admin,
                                                       view.is_automation)

    # ------------------------------------------------------------------ freshness

    def invalidate(self) -> None:
        """Forgets the snapshot: the next request reloads (this process changed something)."""
        self._epoch += 1

    def close(self) -> None:
        """Stops the poller."""
        self._stop.set()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.join(timeout=5)

    def _current(self) -> _Snapshot:
        snap = self._snapshot
        if snap is None or snap.epoch != self._epoch:
            snap = self._reload()
        if snap.next_due is not None and self.clock() >= snap.next_due:
            # A scheduled version's time has come: activate it (race-safe, idempotent).
            governance.activate_due(self.uow_factory())
            snap = self._reload()
        self._start_poller()
        return snap

    def _reload(self) -> _Snapshot:
        asked = time.monotonic()
        with self._lock:
            snap = self._snapshot
            epoch = self._epoch
            if snap is not None and snap.epoch == epoch:
                return snap  # another thread reloaded while this one waited
            failed = self._failed
            if failed is not None and failed[0] >= asked:
                # The database failed the thread this one waited for: do not queue up for
                # a timeout of its own behind every other waiter (each would wait N times).
                raise DatabaseUnavailable(f"the live state could not be loaded: {failed[1]}")
            try:
                snap = self._snapshot = self._load(epoch)
            except Exception as exc:
                if is_unavailable(exc):
                    self._failed = (time.monotonic(), exc)
                raise
            self.reloads += 1
            return snap

    def _load(self, epoch: int) -> _Snapshot:
        uow = self.uow_factory()
        with uow.readonly():
            # The generation first: anything read after it is at least that new.
            generation = uow.live.generation()
            ruleset_ids: dict[str, int] = {}
            active: dict[str, LoadedVersion] = {}
            for ruleset_id, name, loaded in uow.live.active_versions():
                ruleset_ids[name] = ruleset_id
                if loaded is not None:
                    active[name] = loaded
            pauses = uow.live.pauses()
            tokens = {digest: LivePrincipal(name, admin, automation)
                      for digest, name, admin, automation in uow.live.live_tokens()}
            times = uow.live.scheduled_times()
        now = self.clock()
        next_due = min((t or now for t in times), default=None)
        return _Snapshot(generation, ruleset_ids, active, pauses, tokens, next_due, epoch)

    def _pinned_version(self, name: str, version: int, *, dry_run: bool) -> LoadedVersion:
        found = self._pinned.get((name, version))
        if found is not None:
            return found
        loaded = governance.load_version(self.uow_factory(), name, version)
        if loaded.status in RECORDABLE_STATUSES:
            self._pinned[(name, version)] = loaded
        elif not dry_run:
            raise Conflict("version_not_live",
                           f"version {loaded.version} of {name} is {loaded.status}; only a "
                           f"version that has been active can record decisions (use dry_run "
                           f"to try it)")
        return loaded

    def _start_poller(self) -> None:
        if self._poller is not None or self._stop.is_set():
            return
        with self._lock:
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="live-state-poller",
                                                daemon=True)
                self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            snap = self._snapshot
            if snap is None:
                continue
            try:
                uow = self.uow_factory()
                with uow.readonly():
                    generation = uow.live.generation()
                if generation != snap.generation:
                    self.invalidate()
                    self._reload()
            except Exception:  # keep serving the last snapshot
                log.warning("could not check the live generation", exc_info=True)
                time.sleep(self.poll_interval_s)

