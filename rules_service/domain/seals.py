"""Seals: tamper evidence for the decision log and the audit trail, as pure functions.

Nothing here runs when a decision is made. Later, a sealer takes the decisions and audit
events not sealed yet and hashes each one over a canonical encoding of its content
(``content_hash``): a stable JSON text with sorted keys, no spaces, UTF-8, times as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC and numbers in one form (a float with an integral
value is written as that integer, so the JSON column of either database gives the same
text back). Every field that says what was decided, for whom and when is in it
(``decision_content``, ``audit_event_content``).

The item hashes of one seal are the leaves of a Merkle tree built as in RFC 9162 section
2.1 (leaf ``SHA-256(0x00 || item hash)``, node ``SHA-256(0x01 || left || right)``, the
left subtree the largest power of two), so one decision is proved by a path of about
log2(n) hashes (``inclusion_path``, ``Proof.verifies``). A seal's own hash covers its
number, the previous seal's hash, its Merkle root, its item count, its cutoff and when it
was made (``Seal.expected_hash``): changing, removing or slipping in any sealed item, or
any seal, breaks the chain from there on.

Commits are not in time order (an item's time is taken before its transaction commits,
and on PostgreSQL two transactions commit in either order), so a seal only takes items
recorded before its cutoff, a few seconds before it is made, and the next seal also takes
any item recorded before that cutoff which committed after it (a late commit), back to
``late_floor``: the newest seal's cutoff, or a window (a minute) before the newest seal
was made when that is earlier. An item still unsealed and recorded before that floor
committed more than the window after its recorded time, which no transaction of the
service does: it was added to a sealed period.

The encoding is the standard library's JSON with sorted keys rather than RFC 8785: that
scheme limits integers to 2**53, and a recorded input may hold larger ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

ItemKind = Literal["decision", "audit_event"]
"""What a sealed item is: a recorded decision or an audit event."""

DECISION: ItemKind = "decision"
AUDIT_EVENT: ItemKind = "audit_event"

EMPTY_HASH = hashlib.sha256(b"").hexdigest()
"""The Merkle root of no items (RFC 9162), and the previous hash of the first seal."""


def canonical_time(moment: datetime) -> str:
    """A moment as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (naive moments are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normal(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:  # the common containers first: this runs for every value sealed
        return {k if type(k) is str else str(k): _normal(v) for k, v in value.items()}
    if kind is list:
        return [_normal(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    raise TypeError(f"cannot be sealed: {type(value).__name__}")


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """The canonical encoding of ``content`` (see the module docstring)."""
    return json.dumps(_normal(content), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def content_hash(content: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the canonical encoding of ``content``."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


def decision_content(*, id: str, ruleset: str | None, version: int, input: Any,
                     outcome: str, fired_rules: Any, deciding_rules: Any, fallback: bool,
                     fallback_reason: str | None, caller: str, idempotency_key: str | None,
                     request_hash: str | None, evaluated_at: datetime | str,
                     duration_ms: float) -> dict[str, Any]:
    """What a decision's seal covers: everything it says, not its escalation (whose
    status changes as people work on it)."""
    return {"kind": DECISION, "id": id, "ruleset": ruleset, "version": version,
            "input": input, "outcome": outcome, "fired_rules": fired_rules,
            "deciding_rules": deciding_rules, "fallback": bool(fallback),
            "fallback_reason": fallback_reason, "caller": caller,
            "idempotency_key": idempotency_key, "request_hash": request_hash,
            "evaluated_at": _time(evaluated_at), "duration_ms": duration_ms}


def audit_event_content(*, id: int | str, ruleset: str | None, version: int | None,
                        action: str, actor: str, comment: str, details: Any,
                        at: datetime | str) -> dict[str, Any]:
    """What an audit event's seal covers: who did what to which version, when and why."""
    return {"kind": AUDIT_EVENT, "id": str(id), "ruleset": ruleset, "version": version,
            "action": action, "actor": actor, "comment": comment or "",
            "details": details or {}, "at": _time(at)}


def _time(moment: datetime | str) -> str:
    return canonical_time(moment if isinstance(moment, datetime)
                          else datetime.fromisoformat(moment))


# ---------------------------------------------------------------------- Merkle trees

def _leaf(item_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(item_hash)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(item_hashes: Sequence[str]) -> str:
    """The Merkle root (hex) over the item hashes, in their order."""
    if not item_hashes:
        return EMPTY_HASH
    return _root([_leaf(h) for h in item_hashes]).hex()


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), _root(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _root(leaves[:k])]


def inclusion_path(item_hashes: Sequence[str], index: int) -> list[str]:
    """The audit path of the item at ``index``: the sibling hashes from its leaf up."""
    if not 0 <= index < len(item_hashes):
        raise IndexError(f"no item {index} among {len(item_hashes)}")
    return [h.hex() for h in _path(index, [_leaf(h) for h in item_hashes])]


def root_from_path(item_hash: str, index: int, size: int, path: Sequence[str]) -> str | None:
    """The root an audit path leads to (RFC 9162 2.1.3.2), or None when the path cannot
    belong to a tree of ``size`` items."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, _leaf(item_hash)
    for sibling in path:
        p = bytes.fromhex(sibling)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r.hex() if sn == 0 else None


# ---------------------------------------------------------------------- seals

@dataclass(frozen=True)
class SealedItem:
    """One item as a seal recorded it: what it is, when it was recorded, its hash."""

    kind: ItemKind
    id: str
    recorded_at: datetime
    hash: str


@dataclass(frozen=True)
class Seal:
    """One link of the chain: its items' Merkle root, chained to the previous seal."""

    number: int
    previous_hash: str
    root: str
    items: int
    cutoff: datetime
    sealed_at: datetime
    hash: str

    @classmethod
    def make(cls, previous: Seal | None, item_hashes: Sequence[str], cutoff: datetime,
             sealed_at: datetime) -> Seal:
        """The seal after ``previous`` over the item hashes (in their order)."""
        number = previous.number + 1 if previous else 1
        prev = previous.hash if previous else EMPTY_HASH
        draft = cls(number, prev, merkle_root(item_hashes), len(item_hashes), cutoff,
                    sealed_at, "")
        return cls(number, prev, draft.root, draft.items, cutoff, sealed_at,
                   draft.expected_hash())

    def expected_hash(self) -> str:
        """The hash its fields make (equal to ``hash`` unless the seal was altered)."""
        return content_hash({"seal": self.number, "previous": self.previous_hash,
                             "root": self.root, "items": self.items,
                             "cutoff": self.cutoff, "sealed_at": self.sealed_at})


def late_floor(head: Seal | None, window: timedelta) -> datetime | None:
    """Items recorded before this moment and still unsealed were added to a sealed period;
    the next seal takes unsealed items from here on (late commits). It is the head's
    cutoff, or ``window`` before the head was made when that is earlier, so an item that
    commits within ``window`` of its recorded time is always sealed, never reported, and
    the floor never moves back. None before the first seal."""
    if head is None:
        return None
    return min(head.cutoff, head.sealed_at - window)


def check_seal(seal: Seal, previous: Seal | None, item_hashes: Sequence[str]) -> list[str]:
    """What is wrong with one seal, given the seal before it and its items' hashes as
    stored (in their order): each problem as a sentence, none when intact."""
    problems = []
    name = f"seal {seal.number}"
    expected_number = previous.number + 1 if previous else 1
    if seal.number != expected_number:
        problems.append(f"{name}: seal {expected_number} is missing before it")
    expected_previous = previous.hash if previous else EMPTY_HASH
    if seal.previous_hash != expected_previous:
        problems.append(f"{name}: does not chain to the seal before it")
    if seal.hash != seal.expected_hash():
        problems.append(f"{name}: its fields do not make its hash (the seal was altered)")
    if seal.items != len(item_hashes):
        problems.append(f"{name}: sealed {seal.items} items, {len(item_hashes)} are listed")
    if merkle_root(item_hashes) != seal.root:
        problems.append(f"{name}: its list of items does not make its Merkle root "
                        "(the list was altered)")
    return problems


def item_label(kind: ItemKind, item_id: str) -> str:
    """How a problem names an item: ``decision <id>`` or ``audit event <id>``."""
    return f"decision {item_id}" if kind == DECISION else f"audit event {item_id}"


def check_item(item: SealedItem, seal: int, current_hash: str | None) -> str | None:
    """The problem with one sealed item given the hash of what is stored now (None: it is
    gone), or None when it is intact."""
    if current_hash is None:
        return f"{item_label(item.kind, item.id)}: missing (sealed in seal {seal})"
    if current_hash != item.hash:
        return f"{item_label(item.kind, item.id)}: content changed since seal {seal}"
    return None


def added_problem(kind: ItemKind, item_id: str, recorded_at: datetime,
                  floor: datetime) -> str:
    """The sentence naming an item added to a sealed period."""
    return (f"{item_label(kind, item_id)}: added to a sealed period (recorded at "
            f"{canonical_time(recorded_at)}, before {canonical_time(floor)}, unsealed)")


@dataclass(frozen=True)
class Proof:
    """That one item is in a seal: its hash, its place, the path to the seal's root."""

    kind: ItemKind
    id: str
    item_hash: str
    seal: Seal
    index: int
    path: tuple[str, ...]

    def verifies(self) -> bool:
        """True when the path leads from the item's hash to the seal's root and the seal's
        fields make its hash."""
        root = root_from_path(self.item_hash, self.index, self.seal.items, self.path)
        return root == self.seal.root and self.seal.hash == self.seal.expected_hash()

    def to_dict(self) -> dict[str, Any]:
        """JSON form: everything an auditor needs to check it with any SHA-256 tool."""
        s = self.seal
        return {"item": {"kind": self.kind, "id": self.id, "hash": self.item_hash},
                "leaf_index": self.index, "tree_size": s.items, "path": list(self.path),
                "seal": {"seal": s.number, "previous": s.previous_hash, "root": s.root,
                         "items": s.items, "cutoff": canonical_time(s.cutoff),
                         "sealed_at": canonical_time(s.sealed_at), "hash": s.hash},
                "verifies": self.verifies()}
