"""`db partitions` names every month it has, gaps included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rules_service.adapters.partitions import month_ranges


def test_consecutive_months_are_one_range() -> None:
    assert month_ranges(["2026-11", "2026-12", "2027-01"]) == \
        "months with partitions: 2026-11 .. 2027-01 (3)"


def test_a_gap_is_shown_and_its_months_named() -> None:
    assert month_ranges(["2026-01", "2026-02", "2026-05", "2026-07"]) == (
        "months with partitions: 2026-01 .. 2026-02, 2026-05, 2026-07 "
        "(4; missing 2026-03, 2026-04, 2026-06)")


def test_none() -> None:
    assert month_ranges([]) == "months with partitions: none"


@given(st.sets(st.integers(min_value=2000 * 12, max_value=2100 * 12), min_size=1,
               max_size=40))
def test_every_month_between_first_and_last_is_either_listed_or_missing(
        months: set[int]) -> None:
    labels = [f"{n // 12:04d}-{n % 12 + 1:02d}" for n in months]
    line = month_ranges(labels)
    count = int(line.rsplit("(", 1)[1].split(";")[0].rstrip(")"))
    missing = line.split("missing ", 1)[1].rstrip(")").split(", ") if "missing" in line else []
    assert count == len(months)
    assert len(missing) == max(months) - min(months) + 1 - len(months)
