"""Which rollup buckets a window reads: whole days, then hours, then minutes, exactly
covering the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rules_service.adapters.rollups import DAY, DECISION_TIERS, HOUR, MINUTE, floor_to, spans

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNIT = {t.table.name: t.unit for t in DECISION_TIERS}


def test_a_month_reads_whole_days_and_only_its_ragged_ends_in_hours_and_minutes() -> None:
    start = T0 + timedelta(hours=5, minutes=17)
    end = start + timedelta(days=30, hours=2)
    pieces = [(UNIT[table.name], lower, upper) for table, lower, upper
              in spans(start, end, DECISION_TIERS)]
    assert pieces == [
        (DAY, T0 + DAY, T0 + 30 * DAY),
        (HOUR, T0 + 6 * HOUR, T0 + DAY),
        (MINUTE, start, T0 + 6 * HOUR),
        (HOUR, T0 + 30 * DAY, T0 + 30 * DAY + 7 * HOUR),
        (MINUTE, T0 + 30 * DAY + 7 * HOUR, end),
    ]


def test_a_window_inside_one_hour_reads_minutes_only() -> None:
    start, end = T0 + timedelta(minutes=3), T0 + timedelta(minutes=58)
    assert [UNIT[t.name] for t, _, _ in spans(start, end, DECISION_TIERS)] == [MINUTE]
    assert spans(end, start, DECISION_TIERS) == []


minutes = st.integers(min_value=0, max_value=60 * 24 * 90)


@given(minutes, minutes)
def test_the_pieces_cover_the_window_exactly_on_their_own_boundaries(a: int, b: int) -> None:
    start, end = T0 + timedelta(minutes=min(a, b)), T0 + timedelta(minutes=max(a, b))
    pieces = sorted((lower, upper, UNIT[table.name]) for table, lower, upper
                    in spans(start, end, DECISION_TIERS))
    covered = start
    for lower, upper, unit in pieces:
        assert lower == covered  # no gap, no overlap
        assert floor_to(lower, unit) == lower and floor_to(upper, unit) == upper
        covered = upper
    assert covered == end
    # At most the days, plus under a day of hours and under an hour of minutes each side.
    buckets = sum((upper - lower) // unit for lower, upper, unit in pieces)
    assert buckets <= (end - start) // DAY + 2 * 23 + 2 * 59
