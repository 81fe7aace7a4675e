"""The line-by-line diff of two files: comment-only edits are changes, and the diff
rebuilds the new file from the old one."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain.diff.text import file_diff, is_comment_or_blank

OLD = "name: refunds\n# limits\nthresholds:\n  limit: 100  # paid at once\n"


def test_a_comment_only_edit_is_a_change_of_comments() -> None:
    diff = file_diff(OLD, OLD.replace("# limits", "# limits, reviewed in May"))
    assert not diff.identical and diff.only_comments
    assert (diff.added, diff.removed, diff.comment_lines) == (1, 1, 2)


def test_a_value_change_is_not_only_comments() -> None:
    diff = file_diff(OLD, OLD.replace("100", "150"))
    assert not diff.only_comments and diff.comment_lines == 0
    assert ("-", "  limit: 100  # paid at once") in [(x.kind, x.text) for x in diff.lines]


def test_the_same_text_is_identical_and_the_text_form_reads_like_diff_u() -> None:
    assert file_diff(OLD, OLD).identical
    text = file_diff(OLD, OLD + "# end\n").as_text("v1", "v2")
    assert text.startswith("--- v1\n+++ v2\n@@ ") and text.endswith("+# end\n")


def test_comment_or_blank_lines() -> None:
    assert is_comment_or_blank("   # x") and is_comment_or_blank("  ")
    assert not is_comment_or_blank("a: 1  # x")


LINES = st.lists(st.sampled_from(["a: 1", "b: 2", "# c", "", "  - x", "d: <&>"]), max_size=12)


@given(LINES, LINES)
def test_the_diff_counts_every_added_and_removed_line(old: list[str], new: list[str]) -> None:
    before, after = "\n".join(old), "\n".join(new)
    old, new = before.splitlines(), after.splitlines()
    diff = file_diff(before, after, context=0)
    kept = [x.text for x in diff.lines if x.kind == "-"]
    came = [x.text for x in diff.lines if x.kind == "+"]
    assert (len(came), len(kept)) == (diff.added, diff.removed)
    assert diff.identical == (old == new)
    # Removing what went and adding what came turns the old multiset into the new one.
    assert Counter(old) - Counter(kept) + Counter(came) == Counter(new)
