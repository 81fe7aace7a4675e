"""Seals as pure functions: the canonical encoding, item hashes, Merkle paths, the chain."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.domain.seals import (
    EMPTY_HASH,
    Proof,
    Seal,
    SealedItem,
    audit_event_content,
    canonical_json,
    canonical_time,
    check_item,
    check_seal,
    content_hash,
    decision_content,
    inclusion_path,
    late_floor,
    merkle_root,
    root_from_path,
)

AT = datetime(2026, 12, 3, 2, 40, 1, 123456, tzinfo=UTC)

DECISION_FIELDS: dict[str, Any] = {
    "id": "0191d2a4-1b2c-7d3e-8f40-0123456789ab", "ruleset": "refunds", "version": 3,
    "input": {"amount": 12.5, "country": "FR"}, "outcome": "approve",
    "fired_rules": [{"id": "small", "outcome": "approve", "reason": "amount <= 100"}],
    "deciding_rules": ["small"], "fallback": False, "fallback_reason": None,
    "caller": "checkout", "idempotency_key": "k-1", "request_hash": "ab" * 32,
    "evaluated_at": AT, "duration_ms": 0.412,
}


def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_the_encoding_sorts_keys_and_has_no_spaces() -> None:
    expected = '{"a":[true,null,"é"],"b":1}'.encode()
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == expected


def test_an_integral_float_is_written_as_its_integer() -> None:
    # A JSON column may give 1.0 back as 1 (and 1e21 as an integer): one form for both.
    assert canonical_json({"x": 1.0, "y": 1e21}) == canonical_json({"x": 1, "y": 10**21})
    assert canonical_json({"x": 0.1}) == b'{"x":0.1}'


def test_integers_beyond_two_to_the_53_are_kept_exactly() -> None:
    assert canonical_json({"x": 2**64 + 1}) == b'{"x":18446744073709551617}'


def test_times_are_utc_with_microseconds_whatever_their_zone() -> None:
    paris = AT.astimezone(ZoneInfo("Europe/Paris"))
    assert canonical_time(paris) == "2026-12-03T02:40:01.123456Z"
    assert canonical_time(AT.replace(microsecond=0)) == "2026-12-03T02:40:01.000000Z"


def test_a_time_read_back_from_iso_text_hashes_as_the_moment() -> None:
    as_text = dict(DECISION_FIELDS, evaluated_at=AT.isoformat())
    assert content_hash(decision_content(**as_text)) == content_hash(
        decision_content(**DECISION_FIELDS))


def test_not_a_number_cannot_be_sealed() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


CHANGES: dict[str, list[Any]] = {
    "id": ["0191d2a4-1b2c-7d3e-8f40-0123456789ac"], "ruleset": ["other", None],
    "version": [4], "input": [{"amount": 12.6, "country": "FR"}, {"amount": 12.5}],
    "outcome": ["reject"], "fired_rules": [[]], "deciding_rules": [["big"]],
    "fallback": [True], "fallback_reason": ["timeout"], "caller": ["mallory"],
    "idempotency_key": [None, "k-2"], "request_hash": [None],
    "evaluated_at": [AT + timedelta(microseconds=1)], "duration_ms": [0.413],
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CHANGES)), st.data())
def test_any_change_of_one_decision_field_changes_its_hash(name: str, data: Any) -> None:
    changed = data.draw(st.sampled_from(CHANGES[name]))
    before = content_hash(decision_content(**DECISION_FIELDS))
    after = content_hash(decision_content(**dict(DECISION_FIELDS, **{name: changed})))
    assert before != after


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=6), st.randoms())
def test_the_order_of_keys_never_changes_a_hash(data: dict[str, Any], rng: Any) -> None:
    keys = list(data)
    rng.shuffle(keys)
    shuffled = {k: data[k] for k in keys}
    assert content_hash(decision_content(**dict(DECISION_FIELDS, input=data))) == content_hash(
        decision_content(**dict(DECISION_FIELDS, input=shuffled)))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=6), min_size=1,
                       max_size=6), st.data())
def test_any_change_of_one_input_value_changes_the_hash(data: dict[str, Any],
                                                        draw: Any) -> None:
    key = draw.draw(st.sampled_from(sorted(data)))
    other = draw.draw((st.integers() | st.text(max_size=6)).filter(lambda v: v != data[key]
                                                                   or type(v) is not type(
                                                                       data[key])))
    before = content_hash(decision_content(**dict(DECISION_FIELDS, input=data)))
    after = content_hash(decision_content(**dict(DECISION_FIELDS, input={**data, key: other})))
    assert before != after


def test_any_change_of_an_audit_event_changes_its_hash() -> None:
    base = {"id": 7, "ruleset": "refunds", "version": 2, "action": "signed_off",
            "actor": "biz", "comment": "fine", "details": {"role": "business_owner"},
            "at": AT}
    original = content_hash(audit_event_content(**base))
    for name, value in {"id": 8, "ruleset": "x", "version": 3, "action": "rejected",
                        "actor": "mallory", "comment": "", "details": {},
                        "at": AT + timedelta(seconds=1)}.items():
        assert content_hash(audit_event_content(**dict(base, **{name: value}))) != original


def test_a_decision_and_an_audit_event_never_share_a_hash() -> None:
    assert decision_content(**DECISION_FIELDS)["kind"] != audit_event_content(
        id=1, ruleset=None, version=None, action="a", actor="b", comment="", details={},
        at=AT)["kind"]


# ---------------------------------------------------------------------- Merkle trees


def test_the_roots_follow_rfc_9162() -> None:
    assert merkle_root([]) == EMPTY_HASH == hashlib.sha256(b"").hexdigest()
    one = _digest(1)
    leaf = hashlib.sha256(b"\x00" + bytes.fromhex(one)).digest()
    assert merkle_root([one]) == leaf.hex()
    leaves = [hashlib.sha256(b"\x00" + bytes.fromhex(_digest(n))).digest() for n in range(3)]
    left = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    assert merkle_root([_digest(n) for n in range(3)]) == hashlib.sha256(
        b"\x01" + left + leaves[2]).hexdigest()


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_path_leads_to_the_root(size: int, data: Any) -> None:
    hashes = [_digest(n) for n in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = inclusion_path(hashes, index)
    assert len(path) <= max(1, (size - 1).bit_length())
    assert root_from_path(hashes[index], index, size, path) == merkle_root(hashes)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=70), st.data())
def test_a_tampered_leaf_or_a_wrong_place_fails(size: int, data: Any) -> None:
    hashes = [_digest(n) for n in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = inclusion_path(hashes, index)
    root = merkle_root(hashes)
    assert root_from_path(_digest(size + 1), index, size, path) != root
    other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
    assert root_from_path(hashes[index], other, size, path) != root
    if path:
        bent = [*path[:-1], _digest(-1)]
        assert root_from_path(hashes[index], index, size, bent) != root


def test_a_path_outside_the_tree_leads_nowhere() -> None:
    hashes = [_digest(n) for n in range(4)]
    assert root_from_path(hashes[0], 4, 4, inclusion_path(hashes, 0)) is None
    assert root_from_path(hashes[0], 0, 4, [*inclusion_path(hashes, 0), _digest(9)]) is None


# ---------------------------------------------------------------------- the chain


def _chain(count: int) -> list[tuple[Seal, list[str]]]:
    out: list[tuple[Seal, list[str]]] = []
    previous = None
    for n in range(count):
        hashes = [_digest(10 * n + i) for i in range(n + 1)]
        seal = Seal.make(previous, hashes, AT + timedelta(minutes=n),
                         AT + timedelta(minutes=n, seconds=5))
        out.append((seal, hashes))
        previous = seal
    return out


def test_an_untouched_chain_has_no_problem() -> None:
    chain = _chain(3)
    assert chain[0][0].previous_hash == EMPTY_HASH
    previous = None
    for seal, hashes in chain:
        assert check_seal(seal, previous, hashes) == []
        previous = seal


def test_an_altered_seal_a_removed_item_and_a_gap_are_named() -> None:
    (first, _), (second, second_items), (third, third_items) = _chain(3)
    altered = replace(second, items=second.items + 1)
    assert any("altered" in p for p in check_seal(altered, first, second_items))
    assert any("Merkle root" in p for p in check_seal(second, first, second_items[1:]))
    assert any("seal 2 is missing" in p for p in check_seal(third, first, third_items))
    assert any("does not chain" in p for p in check_seal(third, first, third_items))


def test_an_item_changed_or_missing_is_named_with_its_seal() -> None:
    item = SealedItem("decision", "d-1", AT, _digest(1))
    assert check_item(item, 4, _digest(1)) is None
    assert check_item(item, 4, _digest(2)) == "decision d-1: content changed since seal 4"
    assert check_item(item, 4, None) == "decision d-1: missing (sealed in seal 4)"
    event = SealedItem("audit_event", "12", AT, _digest(1))
    assert check_item(event, 1, None) == "audit event 12: missing (sealed in seal 1)"


def test_the_late_commit_floor_is_the_cutoff_or_a_window_before_the_seal() -> None:
    window = timedelta(minutes=1)
    assert late_floor(None, window) is None
    recent = Seal.make(None, [_digest(1)], AT - timedelta(seconds=5), AT)
    assert late_floor(recent, window) == AT - window       # the window is earlier
    catching_up = Seal.make(None, [_digest(1)], AT - timedelta(days=3), AT)
    assert late_floor(catching_up, window) == AT - timedelta(days=3)   # the cutoff is


def test_a_proof_verifies_and_a_proof_of_another_hash_does_not() -> None:
    hashes = [_digest(n) for n in range(5)]
    seal = Seal.make(None, hashes, AT, AT)
    proof = Proof("decision", "d", hashes[3], seal, 3, tuple(inclusion_path(hashes, 3)))
    assert proof.verifies()
    assert proof.to_dict()["verifies"] is True
    assert not replace(proof, item_hash=_digest(99)).verifies()
    assert not replace(proof, seal=replace(seal, sealed_at=AT + timedelta(1))).verifies()
