"""Text values that look alike but differ: Unicode confusables (TR39) and mixed scripts.

`EUR` and `ЕUR` (a Cyrillic Е) print the same and compare different. A ruleset must not
list both as allowed values, nor a value that mixes scripts; an input that is not allowed
but looks like an allowed value is told which character is the impostor.

The confusable data is Unicode's confusables.txt and Scripts.txt as the
``confusable_homoglyphs`` package ships them. ``skeleton`` follows TR39 section 4 (each
character replaced by the prototype of its confusable class, between two decompositions),
decomposing by NFKD rather than NFD so that compatibility forms (fullwidth `Ｕ`,
mathematical `𝐔`) count as look-alikes too; two strings are confusable when their
skeletons are equal.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_DIRECTION_MARKS = "\u200e\u200f"
# Characters of these scripts belong to every script (digits, punctuation, marks).
_SHARED_SCRIPTS = frozenset({"COMMON", "INHERITED", "Unknown"})
# TR39's "highly restrictive" level: these scripts are written together in one word.
_WRITTEN_TOGETHER = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each confusable character's prototype: one member of its class stands for all."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    def prefer(a: str, b: str) -> bool:
        # ASCII first, then the lower code point: any fixed choice makes equal skeletons.
        return (not a.isascii(), ord(a)) < (not b.isascii(), ord(b))

    from confusable_homoglyphs import confusables  # its data loads on import: only when needed

    expansions: dict[str, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1:
            continue  # a sequence's entry is the reverse of a character's expansion
        for glyph in glyphs:
            other = glyph["c"].strip(_DIRECTION_MARKS)
            if len(other) == 1:
                a, b = find(char), find(other)
                if a != b:
                    if prefer(b, a):
                        a, b = b, a
                    parent[b] = a
            elif other:
                expansions[char] = other  # e.g. m -> rn
    table = {c: find(c) for c in parent}
    table.update(expansions)
    return {c: p for c, p in table.items() if c != p}


def skeleton(text: str) -> str:
    """TR39's skeleton (over NFKD): equal skeletons mean the two strings look alike."""
    table = _prototypes()
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFD", "".join(table.get(c, c) for c in decomposed))


def _name(char: str) -> str:
    return unicodedata.name(char, f"U+{ord(char):04X}")


def _script(char: str) -> str:
    from confusable_homoglyphs import categories

    return str(categories.alias(char))


def _scripts(text: str) -> set[str]:
    return {_script(c) for c in text} - _SHARED_SCRIPTS


def is_mixed_script(text: str) -> bool:
    """True when ``text`` mixes scripts that are not written together (Latin with Cyrillic,
    say); Japanese, Chinese and Korean combinations with Latin are one script here."""
    scripts = _scripts(text)
    return len(scripts) > 1 and not any(scripts <= together for together in _WRITTEN_TOGETHER)


def _strangers(text: str) -> list[str]:
    """The characters of ``text`` outside its main script, each once, in order."""
    counts: dict[str, int] = {}
    for c in text:
        counts[_script(c)] = counts.get(_script(c), 0) + 1
    main = max((s for s in counts if s not in _SHARED_SCRIPTS), key=lambda s: counts[s])
    out: list[str] = []
    for c in text:
        if _script(c) not in _SHARED_SCRIPTS | {main} and c not in out:
            out.append(c)
    return out


def describe_mixed_script(text: str) -> str:
    """Why ``text`` mixes scripts: its characters outside its main script, named."""
    strangers = _strangers(text)
    main = ({_script(c) for c in text} - _SHARED_SCRIPTS - {_script(c) for c in strangers})
    named = ", ".join(f"'{c}' is {_name(c)}" for c in strangers)
    return f"it mixes scripts: {named}, among {' and '.join(sorted(main)) or 'other'} letters"


def _differences(value: str, like: str) -> list[str]:
    """The characters of ``value`` that are not the ones of ``like`` it imitates."""
    a, b = unicodedata.normalize("NFD", value), unicodedata.normalize("NFD", like)
    if len(a) == len(b):
        return list(dict.fromkeys(x for x, y in zip(a, b, strict=True) if x != y))
    return list(dict.fromkeys(c for c in a if c not in b))


@dataclass(frozen=True)
class LookAlike:
    """Two different values that look the same."""

    value: str
    like: str

    def explain(self) -> str:
        """`looks like 'EUR' but its 'Е' is CYRILLIC CAPITAL LETTER IE`."""
        named = " and ".join(f"'{c}' is {_name(c)}" for c in _differences(self.value, self.like))
        how = f"its {named}" if named else "is written with other characters"
        return f"looks like '{self.like}' but {how}"


def looks_like(value: str, allowed: Iterable[object]) -> LookAlike | None:
    """The allowed text value that ``value`` imitates, if it is not one itself."""
    texts = [a for a in allowed if isinstance(a, str)]
    if value in texts:
        return None
    # A skeleton is never shorter than its text: a longer value imitates nothing listed.
    longest = max((len(skeleton(t)) for t in texts), default=0)
    if len(value) > longest:
        return None
    mark = skeleton(value)
    for text in texts:
        if skeleton(text) == mark:
            return LookAlike(value, text)
    return None


def confusable_pairs(values: Sequence[object]) -> list[tuple[int, int]]:
    """(i, j) for each listed text value j that looks like an earlier, different value i."""
    first: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    for j, value in enumerate(values):
        if not isinstance(value, str):
            continue
        mark = skeleton(value)
        i = first.setdefault(mark, j)
        if i != j and values[i] != value:
            pairs.append((i, j))
    return pairs


def allowed_values_problems(values: Sequence[object]) -> list[tuple[int, str]]:
    """(index, message) for each allowed text value that mixes scripts or looks like an
    earlier one: a list of allowed values must be told apart by eye."""
    problems = [(i, f"'{v}': {describe_mixed_script(v)}; write each allowed value in one "
                    "script")
                for i, v in enumerate(values) if isinstance(v, str) and is_mixed_script(v)]
    for i, j in confusable_pairs(values):
        problems.append((j, f"'{values[j]}' {LookAlike(str(values[j]), str(values[i])).explain()}"
                            f" (enum[{i}]): two allowed values must not look alike"))
    return sorted(problems)


__all__ = ["LookAlike", "allowed_values_problems", "confusable_pairs", "describe_mixed_script",
           "is_mixed_script", "looks_like", "skeleton"]
