"""A problem found in a ruleset file or a request input: where it is and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.language.wording import PREVIEW_CHARS, preview

__all__ = ["MAX_REPORTED_PROBLEMS", "PREVIEW_CHARS", "Problem", "more_problems", "preview"]

MAX_REPORTED_PROBLEMS = 50
"""An answer lists at most this many problems, then says how many more there are: a
request with 100,000 bad keys gets a short answer (the CLI still lists every problem)."""


@dataclass(frozen=True, order=True)
class Problem:
    """One problem, with its place (``rules[2].when``) and, where known, line and column."""

    place: str
    message: str
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The problem as the ``details`` entry of an error response."""
        out: dict[str, object] = {"place": self.place, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        return out

    def __str__(self) -> str:
        where = self.place or "(file)"
        if self.line is not None:
            column = f", column {self.column}" if self.column else ""
            where += f" (line {self.line}{column})"
        return f"{where}: {self.message}"


def more_problems(rest: int, shown: int = MAX_REPORTED_PROBLEMS) -> Problem:
    """The problem that stands for ``rest`` problems left out after ``shown``."""
    return Problem("", f"{rest:,} more problem{'s' if rest != 1 else ''} not listed; fix "
                       f"these {shown} and try again")
