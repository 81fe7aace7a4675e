"""What durable-rules can take: the limits of one durable ruleset, the codes of the fact
encoding, and the errors raised when a ruleset or an input does not fit."""

from __future__ import annotations

ABSENT_LOW = -1
ABSENT_HIGH = 1_000_000_000
CATCH_ALL = "_e"
SENTINEL_KEY = "_e"

# Limits measured on durable-rules 2.0.28, with a margin: more than 15 $and/$or nodes in one
# rule fails (error 113); ~250 keys in a fact fails (302); ~510 tests in one rule overflows the
# stack (303) or hangs; 256 rules misfire silently and ~300 fail (108); 100 rules of 24 tests
# each overflow the stack at assertion time (303). These bound ONE durable ruleset (a shard);
# a ruleset larger than that is split into as many shards as it needs.
MAX_LOGIC_NODES_PER_RULE = 15
MAX_TESTS_PER_RULE = 200
MAX_DURABLE_RULES = 200
MAX_TESTS_TOTAL = 1000
MAX_FACT_KEYS = 200
# durable walks its alpha network with a fixed stack of 64 entries (events.c, handleAlpha,
# MAX_STACK_SIZE): every true test pushes its node, so 64 rules all true at once fail with
# error 303. Each shard is bounded by the worst case (every test true), see _stack_cost; the
# catch-all rule takes one more entry.
MAX_STACK_ENTRIES = 64
STACK_BUDGET = 56
# How far one rule may be split (into the terms of its disjunctive normal form) to fit.
MAX_PIECES_PER_RULE = 1024



class EngineCompileError(ValueError):
    """The ruleset cannot be run by the durable engine (too large or not well typed)."""


class EncodeError(ValueError):
    """An input value cannot be encoded for the engine (wrong type, NaN)."""
