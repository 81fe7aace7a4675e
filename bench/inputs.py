"""The bench's inputs: the example ruleset's own test inputs with their numbers jittered."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from bench.common import RULESET_FILE
from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.domain.errors import InputInvalid
from rules_service.domain.inputs import validate_input
from rules_service.domain.ruleset import Ruleset


def ruleset() -> Ruleset:
    """The example ruleset every part of the bench decides with."""
    return load_ruleset_file(RULESET_FILE)


def raw_inputs(rs: Ruleset, n: int, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` valid inputs as a caller sends them (no defaults applied)."""
    rng = random.Random(seed)
    seeds = [t.input for t in rs.tests]
    out: list[dict[str, Any]] = []
    for _ in range(n * 20):  # bounded: a jittered value may leave the schema
        if len(out) >= n:
            break
        raw = json.loads(json.dumps(rng.choice(seeds)))
        for key, value in raw.items():
            if isinstance(value, float | int) and not isinstance(value, bool):
                raw[key] = type(value)(value * rng.uniform(0.5, 1.5))
        try:
            validate_input(rs, raw)
        except InputInvalid:
            continue
        out.append(raw)
    return out


def validated(rs: Ruleset, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The inputs with the ruleset's defaults applied, as the evaluators receive them."""
    return [validate_input(rs, raw) for raw in raws]


def write_bodies(path: Path, raws: list[dict[str, Any]]) -> Path:
    """One evaluate request body per line, for the wrk script."""
    path.write_text("".join(json.dumps({"input": raw}) + "\n" for raw in raws))
    return path
