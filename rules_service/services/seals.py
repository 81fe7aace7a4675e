"""Sealing, verifying and proving the decision log and the audit trail.

Nothing here is on the evaluate path: a decision is recorded exactly as before, and
sealing reads it later. ``seal`` (run by ``rules-service audit seal`` and by the worker at
least once a minute) takes every decision and audit event recorded before a cutoff
``COMMIT_LAG`` ago that no seal lists yet, hashes each over its canonical content and
writes one seal over them, chained to the previous one (``domain.seals``). Items recorded
before the previous seal's cutoff that committed after it (late commits) are taken too,
back to ``domain.seals.late_floor`` (``LATE_COMMIT_WINDOW``).
A run with nothing new writes nothing, so sealing is idempotent. The items are read and
hashed without a lock; the seal is written under the sealing lock only if the head is
still the one it was built on (``adapters.seal_store``), else built again: two sealers at
once never fork the chain.

``verify`` recomputes everything: each seal's hash and its link to the one before, each
seal's Merkle root from the item hashes it lists, and each listed item's hash from what is
stored now, naming every item changed or missing and every unsealed item recorded before
the late-commit floor (added to a sealed period). A month removed by the retention is
checked against its archive instead, when the archive directory is given: the archive must
match its manifest's sha256, the seals its manifest names must be the chain's, and each
archived decision must hash to what its seal lists.

``prove`` gives the audit path of one decision from its hash to its seal's root.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rules_service.adapters.seal_store import Pending, SealStore
from rules_service.domain.errors import NotFound
from rules_service.domain.seals import (
    AUDIT_EVENT,
    DECISION,
    ItemKind,
    Proof,
    Seal,
    SealedItem,
    added_problem,
    canonical_time,
    check_item,
    check_seal,
    content_hash,
    decision_content,
    inclusion_path,
    late_floor,
)

COMMIT_LAG = timedelta(seconds=5)
"""A seal takes items recorded at least this long ago, so that transactions still
committing (their times were taken before they commit) are not passed over."""

MAX_ITEMS = 10_000
"""Most decisions (and most audit events) one seal takes; a run writes as many seals as
it needs, each over the oldest items left."""

LATE_COMMIT_WINDOW = timedelta(minutes=1)
"""A seal also takes items recorded up to this long before the previous seal was made
that committed after it; older unsealed items were added to a sealed period. Longer than
any transaction of the service (statements time out after 10 s by default)."""

ATTEMPTS = 5
"""Times one seal is built again when another sealer wrote the head meanwhile."""

SEAL_INTERVAL_S = 30.0
"""How often the worker seals (at least once a minute)."""


def _choose(store: SealStore, head: Seal | None, now: datetime,
            lag: timedelta) -> tuple[datetime, list[Pending], bool]:
    """The next seal's cutoff and items (oldest first), and whether more wait after it."""
    floor = late_floor(head, LATE_COMMIT_WINDOW)
    cutoff = now - lag
    if head is not None and cutoff < head.cutoff:
        cutoff = head.cutoff  # a clock that went back never moves the cutoff back
    decisions, events = store.pending(floor, cutoff, MAX_ITEMS + 1)
    overflows = [group[MAX_ITEMS][2] for group in (decisions, events)
                 if len(group) > MAX_ITEMS]
    if overflows:
        earliest = min(overflows)
        if head is not None and earliest < head.cutoff:
            # More late commits than one seal takes: all of them now, or they would fall
            # below the next seal's floor.
            cutoff = head.cutoff
            decisions, events = store.pending(floor, cutoff, None)
        elif any(p[2] < earliest for p in decisions + events):
            cutoff = earliest
        else:  # all of one moment: that moment whole
            cutoff = earliest + timedelta(microseconds=1)
            decisions, events = store.pending(floor, cutoff, None)
    chosen = sorted((p for p in decisions + events if p[2] < cutoff),
                    key=lambda p: (p[2], p[0], p[1]))
    return cutoff, chosen, bool(overflows)


def _seal_once(store: SealStore, now: datetime, lag: timedelta) -> tuple[Seal | None, bool]:
    """Writes one seal over the items waiting; (the seal or None, whether more wait)."""
    for _ in range(ATTEMPTS):
        newest = store.newest(1)
        head = newest[0] if newest else None
        cutoff, chosen, more = _choose(store, head, now, lag)
        if not chosen:
            return None, False
        items = [SealedItem(kind, item_id, at, content_hash(content))
                 for kind, item_id, at, content in chosen]
        seal = Seal.make(head, [i.hash for i in items], cutoff, now)
        with store.sealing() as tx:
            current = tx.newest(1)
            if (current[0].hash if current else None) != (head.hash if head else None):
                continue  # another sealer went first: read what is left and try again
            tx.add(seal, items)
            return seal, more
    return None, False


def seal(store: SealStore, now: datetime, lag: timedelta = COMMIT_LAG) -> list[Seal]:
    """Seals every decision and audit event waiting; the seals written (none when nothing
    waited)."""
    written = []
    while True:
        made, more = _seal_once(store, now, lag)
        if made is not None:
            written.append(made)
        if made is None or not more:
            return written


def run_sealer(store: SealStore, stop: threading.Event, clock: Callable[[], datetime],
               on_error: Callable[[Exception], None],
               interval_s: float = SEAL_INTERVAL_S) -> None:
    """Seals every ``interval_s`` until ``stop`` is set (the worker's sealing thread); a
    failed run is handed to ``on_error`` and tried again at the next interval."""
    while True:
        try:
            seal(store, clock())
        except Exception as exc:  # the database may be down: never stop sealing for good
            on_error(exc)
        if stop.wait(interval_s):
            return


def latest(store: SealStore) -> Seal:
    """The newest seal; NotFound before the first."""
    newest = store.newest(1)
    if not newest:
        raise NotFound("nothing has been sealed yet")
    return newest[0]


@dataclass
class Verification:
    """What verify checked and every problem it found."""

    decisions: int = 0
    audit_events: int = 0
    seals: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems

    def lines(self) -> list[str]:
        """Every problem, then the summary line."""
        if self.intact:
            return [f"{self.decisions} decisions, {self.audit_events} audit events, "
                    f"{self.seals} seals intact"]
        count = len(self.problems)
        return [*self.problems,
                f"{count} problem{'s' if count != 1 else ''} in {self.decisions} decisions, "
                f"{self.audit_events} audit events, {self.seals} seals"]


class Archives:
    """The retention's archives in one directory, read when a sealed decision is no
    longer in the database: month by month, each file checked against its manifest."""

    def __init__(self, directory: Path, chain: dict[int, str]) -> None:
        self.directory = directory
        self.chain = chain
        self.problems: list[str] = []
        self._months: dict[str, dict[str, str]] = {}

    def _manifests(self, period: str | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in sorted(self.directory.glob("*.manifest.json")):
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                self.problems.append(f"archive manifest {path.name}: unreadable ({exc})")
                continue
            if period is None or manifest.get("period") == period:
                yield path, manifest

    def check_manifests(self) -> None:
        """Every manifest's seals must be the chain's seals."""
        for path, manifest in self._manifests():
            for listed in manifest.get("seals", []):
                number, digest = listed.get("seal"), listed.get("hash")
                if self.chain.get(number) != digest:
                    self.problems.append(f"archive manifest {path.name}: seal {number} "
                                         "differs from the chain")

    def hash_of(self, item: SealedItem) -> str | None:
        """The archived decision's content hash, or None when no matching archive has it."""
        period = item.recorded_at.strftime("%Y-%m")
        if period not in self._months:
            self._months[period] = self._load(period)
        return self._months[period].get(item.id)

    def _load(self, period: str) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for path, manifest in self._manifests(period):
            archive = self.directory / str(manifest.get("file", ""))
            if not archive.is_file() or _sha256(archive) != manifest.get("sha256"):
                self.problems.append(f"archive {archive.name}: does not match its manifest "
                                     f"{path.name}")
                continue
            try:
                hashes.update(_archive_hashes(archive))
            except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
                self.problems.append(f"archive {archive.name}: unreadable ({exc!r})")
        return hashes


def _archive_hashes(archive: Path) -> dict[str, str]:
    hashes = {}
    with gzip.open(archive, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            hashes[str(record["decision_id"])] = content_hash(_archived(record))
    return hashes


def _archived(record: dict[str, Any]) -> dict[str, Any]:
    return decision_content(
        id=record["decision_id"], ruleset=record["ruleset"], version=record["version"],
        input=record["input"], outcome=record["outcome"], fired_rules=record["fired_rules"],
        deciding_rules=record["deciding_rules"], fallback=record["fallback"],
        fallback_reason=record["fallback_reason"], caller=record["caller"],
        idempotency_key=record["idempotency_key"], request_hash=record["request_hash"],
        evaluated_at=record["evaluated_at"], duration_ms=record["duration_ms"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_items(store: SealStore, seal_: Seal, items: list[SealedItem],
                 archives: Archives | None, report: Verification) -> None:
    for kind in (DECISION, AUDIT_EVENT):
        mine = [i for i in items if i.kind == kind]
        current = store.contents(kind, [i.id for i in mine])
        for item in mine:
            content = current.get(item.id)
            now_hash = content_hash(content) if content is not None else None
            if now_hash is None and archives is not None and kind == DECISION:
                now_hash = archives.hash_of(item)
            problem = check_item(item, seal_.number, now_hash)
            if problem:
                report.problems.append(problem)
        if kind == DECISION:
            report.decisions += len(mine)
        else:
            report.audit_events += len(mine)


def verify(store: SealStore, archive_dir: Path | None = None,
           head: tuple[int, str] | None = None) -> Verification:
    """Checks every seal and every item it lists (see the module docstring); ``head`` is
    a seal number and hash kept outside the database, checked against the chain."""
    report = Verification()
    seals = store.all_seals()
    chain = {s.number: s.hash for s in seals}
    archives = Archives(archive_dir, chain) if archive_dir is not None else None
    if archives is not None:
        archives.check_manifests()
    previous: Seal | None = None
    for current in seals:
        items = store.items_of(current.number)
        report.problems += check_seal(current, previous, [i.hash for i in items])
        _check_items(store, current, items, archives, report)
        previous = current
    report.seals = len(seals)
    floor = late_floor(seals[-1] if seals else None, LATE_COMMIT_WINDOW)
    if floor is not None:
        report.problems += [added_problem(kind, item_id, at, floor)
                            for kind, item_id, at in store.unsealed_before(floor)]
    if head is not None:
        number, digest = head
        if chain.get(number) != digest:
            report.problems.append(f"seal {number}: differs from the head kept outside "
                                   f"({chain.get(number, 'missing')})")
    if archives is not None:
        report.problems += archives.problems
    return report


@dataclass(frozen=True)
class DecisionProof:
    """A decision's proof, and whether what is stored now still hashes to it."""

    proof: Proof
    content_matches: bool

    def lines(self) -> list[str]:
        """The proof for people, then as JSON on one line."""
        p, s = self.proof, self.proof.seal
        out = [f"decision {p.id}",
               f"content hash {p.item_hash} "
               f"({'matches' if self.content_matches else 'DOES NOT match'} what is stored)",
               f"seal {s.number}: leaf {p.index} of {s.items}, root {s.root}",
               *(f"  path {n}: {h}" for n, h in enumerate(p.path)),
               f"seal hash {s.hash} (sealed {canonical_time(s.sealed_at)}, previous "
               f"{s.previous_hash})",
               f"the path {'leads' if p.verifies() else 'does NOT lead'} to the seal's root",
               json.dumps({**p.to_dict(), "content_matches": self.content_matches},
                          sort_keys=True)]
        return out


def prove(store: SealStore, decision_id: str) -> DecisionProof:
    """The audit path of one sealed decision; NotFound when no seal lists it yet."""
    kind: ItemKind = DECISION
    found = store.item(kind, decision_id)
    if found is None:
        raise NotFound(f"decision {decision_id} is not sealed (unknown, or newer than the "
                       "newest seal)")
    number, item = found
    seal_ = store.seal(number)
    if seal_ is None:
        raise NotFound(f"seal {number} listing decision {decision_id} is missing")
    listed = store.items_of(number)
    hashes = [i.hash for i in listed]
    index = next(n for n, i in enumerate(listed) if i.kind == kind and i.id == decision_id)
    proof = Proof(kind, decision_id, item.hash, seal_, index,
                  tuple(inclusion_path(hashes, index)))
    current = store.contents(kind, [decision_id]).get(decision_id)
    matches = current is not None and content_hash(current) == item.hash
    return DecisionProof(proof, matches)
