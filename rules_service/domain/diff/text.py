"""The line-by-line diff of two versions' files, beside the diff of what they mean.

The file is what a reviewer reads, so a change of comments or formatting only is a change
worth showing: ``FileDiff.only_comments`` says so, and the review page lists it as such.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

CONTEXT_LINES = 2
"""Unchanged lines shown around each changed one."""


@dataclass(frozen=True)
class DiffLine:
    """One line of the unified diff: ``kind`` is ``+`` (added), ``-`` (removed), `` ``
    (unchanged context) or ``@`` (where a hunk starts)."""

    kind: str
    text: str


@dataclass(frozen=True)
class FileDiff:
    """The unified diff of two files and what kind of lines it touches."""

    lines: tuple[DiffLine, ...]
    added: int
    removed: int
    comment_lines: int
    """Added or removed lines that are comments or blank: they change nothing decided."""

    @property
    def identical(self) -> bool:
        """True when the two files are the same text."""
        return not self.added and not self.removed

    @property
    def only_comments(self) -> bool:
        """True when every changed line is a comment or blank (the meaning is unchanged)."""
        return not self.identical and self.comment_lines == self.added + self.removed

    def as_text(self, from_label: str, to_label: str) -> str:
        """The unified diff as plain text, as ``diff -u`` prints it."""
        body = [line.text if line.kind == "@" else line.kind + line.text
                for line in self.lines]
        return "\n".join([f"--- {from_label}", f"+++ {to_label}", *body]) + "\n"

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"added": self.added, "removed": self.removed,
                "comment_lines": self.comment_lines, "only_comments": self.only_comments,
                "lines": [[line.kind, line.text] for line in self.lines]}


def is_comment_or_blank(line: str) -> bool:
    """A YAML line that decides nothing: empty, or only a ``#`` comment."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def file_diff(before: str, after: str, context: int = CONTEXT_LINES) -> FileDiff:
    """The unified diff of ``before`` and ``after`` (difflib), line by line."""
    old, new = before.splitlines(), after.splitlines()
    lines: list[DiffLine] = []
    added = removed = comments = 0
    for raw in difflib.unified_diff(old, new, lineterm="", n=context):
        if raw.startswith(("---", "+++")):
            continue
        kind, text = raw[:1], raw[1:]
        if kind == "@":
            lines.append(DiffLine("@", raw))
            continue
        if kind == "+":
            added += 1
        elif kind == "-":
            removed += 1
        if kind in "+-" and is_comment_or_blank(text):
            comments += 1
        lines.append(DiffLine(kind, text))
    return FileDiff(tuple(lines), added, removed, comments)


__all__ = ["CONTEXT_LINES", "DiffLine", "FileDiff", "file_diff", "is_comment_or_blank"]
