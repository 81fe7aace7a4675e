"""Hypothesis strategies and properties for fuzzing the ruleset loader and the condition
language: whatever the text, the answer is a ruleset or the project's own problems
(RulesetInvalid, ConditionSyntaxError, type problems), never another exception.

tests/unit runs each property with a few examples (so `make test` exercises it);
tests/reliability runs them with many, bounded in time.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

from rules_service.adapters.ruleset_files import load_ruleset_definition, load_ruleset_text
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import FieldType, InputField, Ruleset
from rules_service.language.parser import ConditionSyntaxError, parse_condition
from rules_service.language.printer import format_condition
from rules_service.language.typecheck import check_condition, field_paths

# -- the ruleset loader ---------------------------------------------------------------------

VALID: dict[str, Any] = {
    "name": "fuzz",
    "title": "Fuzz",
    "description": "A ruleset to break.",
    "owners": {role: {"primary": f"{role}-a", "backup": f"{role}-b"}
               for role in ("business_owner", "operations_owner", "approver", "maintainer")},
    "signoff": ["approver"],
    "thresholds": {"limit": 100, "country": "DE"},
    "inputs": {"amount": {"type": "number", "required": True, "minimum": 0},
               "country": {"type": "string", "enum": ["DE", "FR"]},
               "employee": {"type": "object",
                            "properties": {"senior": {"type": "boolean"}}}},
    "rules": [{"id": "small", "when": "amount <= thresholds.limit", "then": "approve"},
              {"id": "abroad", "when": "country != thresholds.country and "
                                       "not employee.senior", "then": "escalate"}],
    "tables": [{"id": "t", "columns": ["amount", "country"],
                "rows": [{"id": "r1", "when": ["> 1000", "FR"], "then": "reject"}]}],
    "default": "escalate",
    "fallback": "escalate",
    "tests": [{"name": "small", "input": {"amount": 1}, "expect": {"outcome": "approve"}}],
    "runbook": {"purpose": "p", "escalation": {"path": ["approver-a"],
                                               "response_time_target": "4h"}},
    "impact": {"minutes_saved_per_auto_decision": 5},
}

# Every character there is, lone surrogates, controls and non-characters included.
any_character = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
awkward_character = st.sampled_from(
    ["\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85", "\ufeff", "\ufffe", "\uffff",
     "\ud800", "\udfff", "\u2028", "\t", "\r", "\n", ":", "-", "&", "*", "!", "<<", "{",
     "[", "'", '"', "#", "%", "@", "`", "|", ">", "?", ",", " "])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True),
                         st.text(any_character, max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12)

condition_pieces = st.sampled_from(
    ["amount", "country", "employee", "employee.senior", "thresholds.limit", "thresholds.x",
     "==", "!=", "<", "<=", ">", ">=", "=", "and", "or", "not", "in", "matches", "exists",
     "(", ")", "[", "]", ",", ".", "1", "-1", "1e999", "0.5", '"DE"', "'x", '"(a"', "true",
     "false", "\\", "$", "\n", " "])
condition_texts = st.one_of(
    st.lists(condition_pieces, max_size=30).map(" ".join),
    st.text(any_character, max_size=40),
    st.integers(1, 3000).map(lambda n: "not " * n + "amount > 1"),
    st.integers(1, 3000).map(lambda n: "(" * n + "amount > 1" + ")" * n),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@st.composite
def mutated_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """The valid ruleset with a few places replaced, added or removed."""
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "condition", "remove", "add", "repeat"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "condition":
            parent[path[-1]] = draw(condition_texts)
        elif action == "remove":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "repeat" and isinstance(parent, list):
            parent.extend([parent[path[-1]]] * draw(st.integers(1, 50)))
    return data


@st.composite
def ruleset_texts(draw: st.DrawFn) -> str:
    """YAML (or JSON) text: a mutated ruleset, then maybe characters spliced in, or noise."""
    kind = draw(st.sampled_from(["yaml", "json", "noise", "splice"]))
    if kind == "noise":
        return draw(st.text(any_character, max_size=200))
    data = draw(mutated_definitions())
    if kind == "json":
        import json

        text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    else:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if kind == "splice" and text:
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(text)))
            piece = draw(st.one_of(awkward_character, st.text(any_character, max_size=3)))
            text = text[:at] + piece + text[at:]
    return text


def _clean_problems(problems: tuple[Problem, ...] | list[Problem]) -> None:
    assert problems, "a refusal names at least one problem"
    for problem in problems:
        assert isinstance(problem, Problem)
        assert isinstance(problem.message, str) and problem.message
        assert problem.line is None or problem.line >= 1
        str(problem)  # the CLI prints each one


def load_text_cleanly(text: str) -> None:
    """Property: loading any text gives a Ruleset or RulesetInvalid with usable problems."""
    try:
        result = load_ruleset_text(text, "fuzz.yaml")
    except RulesetInvalid as exc:
        _clean_problems(exc.problems)
        return
    assert isinstance(result, Ruleset)


def load_definition_cleanly(definition: dict[str, Any]) -> None:
    """Property: loading any definition object gives a Ruleset or RulesetInvalid."""
    try:
        result = load_ruleset_definition(definition)
    except RulesetInvalid as exc:
        _clean_problems(exc.problems)
        return
    assert isinstance(result, Ruleset)


# -- the condition language ----------------------------------------------------------------

FIELDS = field_paths([
    InputField("amount", FieldType.NUMBER), InputField("count", FieldType.INTEGER),
    InputField("country", FieldType.STRING, enum=("DE", "FR")),
    InputField("flag", FieldType.BOOLEAN),
    InputField("employee", FieldType.OBJECT,
               properties=(InputField("senior", FieldType.BOOLEAN),)),
])
THRESHOLDS = {"limit": 100, "country": "DE", "x": True}


def parse_and_check_cleanly(text: str) -> None:
    """Property: any condition text parses to an AST the type checker and printer handle,
    or is a ConditionSyntaxError with a message and a position inside the text."""
    try:
        expr = parse_condition(text)
    except ConditionSyntaxError as exc:
        assert exc.message
        assert exc.line is None or 1 <= exc.line <= text.count("\n") + 1
        return
    for problem in check_condition(expr, FIELDS, THRESHOLDS):
        assert problem.message
    assert parse_condition(format_condition(expr)) == expr
