"""Operations figures: nearest-rank percentiles, rates, throughput, durations, hours saved."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain import figures

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_nearest_rank_of_one_to_hundred_is_the_percent_itself() -> None:
    values = list(range(100, 0, -1))  # order must not matter
    assert figures.percentiles(values) == {"p50": 50, "p95": 95, "p99": 99}


@pytest.mark.parametrize(("n", "p", "rank"), [
    (1, 50, 1), (1, 99, 1), (2, 50, 1), (3, 50, 2), (4, 50, 2), (10, 95, 10), (20, 95, 19),
    (21, 95, 20), (100, 99, 99), (101, 99, 100), (10, 0, 1), (10, 100, 10),
])
def test_nearest_rank_is_the_ceiling_of_p_times_n(n: int, p: int, rank: int) -> None:
    assert figures.nearest_rank(n, p) == rank


def test_rank_is_computed_exactly_where_floats_would_round_up() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; the exact rank is 29.
    assert figures.nearest_rank(100, 29) == 29
    assert figures.nearest_rank(20, 95) == 19


def test_percentile_of_nothing_is_none() -> None:
    assert figures.percentile([], 50) is None
    assert figures.percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_percentile_outside_zero_to_hundred_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        figures.percentile([1.0], 101)


def test_small_samples_report_observed_values_not_interpolations() -> None:
    assert figures.percentiles([1.0, 2.0, 3.0, 4.0]) == {"p50": 2.0, "p95": 4.0, "p99": 4.0}
    assert figures.median([10.0, 30.0, 20.0]) == 20.0


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1))
def test_percentiles_are_monotone_and_within_the_range(values: list[float]) -> None:
    p = figures.percentiles(values, (0, 50, 95, 99, 100))
    assert p["p0"] == min(values)
    assert p["p100"] == max(values)
    assert min(values) <= p["p50"] <= p["p95"] <= p["p99"] <= max(values)  # type: ignore[operator]
    assert all(v in values for v in p.values())


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1),
       st.integers(min_value=0, max_value=100))
def test_at_least_p_percent_of_values_lie_at_or_below_the_percentile(
        values: list[int], p: int) -> None:
    result = figures.percentile(values, p)
    below_or_equal = sum(1 for v in values if v <= result)  # type: ignore[operator]
    strictly_below = sum(1 for v in values if v < result)  # type: ignore[operator]
    assert below_or_equal * 100 >= p * len(values)
    assert strictly_below == 0 or strictly_below * 100 < p * len(values)


def test_rate_of_nothing_is_undefined_not_zero() -> None:
    assert figures.rate(0, 0) is None
    assert figures.rate(0, 4) == 0.0
    assert figures.rate(1, 4) == 0.25


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        figures.rate(-1, 3)
    with pytest.raises(ValueError, match="negative"):
        figures.hours_saved(-1, 6)


def test_shares_sum_to_one_when_anything_was_counted() -> None:
    result = figures.shares({"approve": 6, "escalate": 3, "reject": 1})
    assert result == {"approve": 0.6, "escalate": 0.3, "reject": 0.1}
    assert math.isclose(sum(v for v in result.values() if v is not None), 1.0)
    assert figures.shares({"approve": 0, "reject": 0}) == {"approve": None, "reject": None}


def test_throughput_is_count_per_hour_of_the_window() -> None:
    assert figures.per_hour(42, T0, T0 + timedelta(days=7)) == 0.25
    assert figures.per_hour(3, T0, T0 + timedelta(minutes=30)) == 6.0
    assert figures.per_hour(3, T0, T0) is None


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        figures.window_hours(T0, T0 - timedelta(seconds=1))


def test_durations_need_both_ends_in_order() -> None:
    assert figures.duration_seconds(T0, T0 + timedelta(hours=2)) == 7200.0
    assert figures.duration_seconds(T0, None) is None
    assert figures.duration_seconds(None, T0) is None
    assert figures.duration_seconds(T0 + timedelta(seconds=1), T0) is None


def test_hours_saved_is_auto_decisions_times_minutes_in_hours() -> None:
    assert figures.hours_saved(30, 6) == 3.0
    assert figures.hours_saved(7, 2.5) == pytest.approx(7 * 2.5 / 60)
    assert figures.hours_saved(30, None) == 0.0
    assert figures.hours_saved(0, 6) == 0.0


@pytest.mark.parametrize(("outcome", "fallback", "auto"), [
    ("approve", False, True), ("reject", False, True), ("escalate", False, False),
    ("approve", True, False), ("reject", True, False), ("escalate", True, False),
])
def test_only_rule_made_approvals_and_rejections_are_auto_decided(
        outcome: str, fallback: bool, auto: bool) -> None:
    assert figures.is_auto_decided(outcome, fallback) is auto


def test_runbook_target_and_impact_are_read_from_a_definition() -> None:
    definition = {"runbook": {"escalation": {"path": ["a"], "response_time_target": "4h"}},
                  "impact": {"minutes_saved_per_auto_decision": 6}}
    assert figures.response_time_target(definition) == "4h"
    assert figures.minutes_saved_per_auto_decision(definition) == 6.0


@pytest.mark.parametrize("definition", [
    {}, {"runbook": None, "impact": None}, {"runbook": {"escalation": "soon"}},
    {"impact": {"minutes_saved_per_auto_decision": "six"}},
    {"impact": {"minutes_saved_per_auto_decision": True}},
])
def test_missing_or_odd_runbook_and_impact_give_none(definition: dict[str, object]) -> None:
    assert figures.response_time_target(definition) is None
    assert figures.minutes_saved_per_auto_decision(definition) is None


# --------------------------------------------------------------------------- histograms

BOUNDS = figures.LATENCY_BUCKETS_MS


def test_histogram_of_counts_each_value_in_its_bucket_with_inclusive_upper_bounds() -> None:
    counts = figures.histogram_of([0.0, 0.05, 0.051, 10.0, 10000.0, 10000.1], BOUNDS)
    assert counts[0] == 2  # 0 and 0.05: (0, 0.05] and 0 itself
    assert counts[1] == 1  # 0.051
    assert counts[BOUNDS.index(10.0)] == 1
    assert counts[BOUNDS.index(10000.0)] == 1
    assert counts[-1] == 1  # above the last bound
    assert sum(counts) == 6


def test_histogram_percentile_interpolates_by_rank_inside_the_bucket() -> None:
    # Ten values in (5, 10]: the 5th of them sits half-way through the bucket.
    counts = figures.histogram_of([6.0] * 10, BOUNDS)
    assert figures.histogram_percentile(counts, BOUNDS, 50) == 7.5
    assert figures.histogram_percentile(counts, BOUNDS, 100) == 10.0


def test_histogram_percentile_is_capped_at_the_observed_maximum() -> None:
    counts = figures.histogram_of([6.0], BOUNDS)
    assert figures.histogram_percentile(counts, BOUNDS, 50) == 10.0
    assert figures.histogram_percentile(counts, BOUNDS, 50, maximum=6.0) == 6.0


def test_histogram_percentile_beyond_the_last_bound_is_the_maximum() -> None:
    counts = figures.histogram_of([20000.0, 30000.0], BOUNDS)
    assert figures.histogram_percentile(counts, BOUNDS, 99, maximum=30000.0) == 30000.0
    assert figures.histogram_percentile(counts, BOUNDS, 99) == 10000.0


def test_histogram_percentile_of_nothing_is_none_and_of_a_wrong_shape_an_error() -> None:
    assert figures.histogram_percentile([0] * figures.LATENCY_BUCKET_COUNT, BOUNDS, 50) is None
    with pytest.raises(ValueError, match="need"):
        figures.histogram_percentile([1, 2], BOUNDS, 50)


durations = st.floats(min_value=0, max_value=60000, allow_nan=False, allow_infinity=False)


@given(st.lists(durations, min_size=1, max_size=300), st.integers(min_value=0, max_value=100),
       st.booleans())
def test_histogram_percentile_lies_in_the_bucket_of_the_nearest_rank_percentile(
        values: list[float], p: int, with_maximum: bool) -> None:
    counts = figures.histogram_of(values, BOUNDS)
    estimate = figures.histogram_percentile(counts, BOUNDS, p,
                                            max(values) if with_maximum else None)
    exact = figures.percentile(values, p)
    assert estimate is not None and exact is not None
    if with_maximum:
        assert figures.latency_bucket(estimate) == figures.latency_bucket(exact)
        assert estimate <= max(values)
    elif exact > BOUNDS[-1]:
        assert estimate == BOUNDS[-1]  # unbounded, no maximum: all it can say is "above"
    else:
        assert figures.latency_bucket(estimate) == figures.latency_bucket(exact)


@given(st.lists(st.floats(min_value=0, max_value=1e8, allow_nan=False), min_size=1,
                max_size=200), st.integers(min_value=0, max_value=100))
def test_cycle_time_percentile_lies_in_the_bucket_of_the_nearest_rank_percentile(
        seconds: list[float], p: int) -> None:
    counts = figures.histogram_of(seconds, figures.CYCLE_BUCKETS_S)
    estimate = figures.histogram_percentile(counts, figures.CYCLE_BUCKETS_S, p, max(seconds))
    exact = figures.percentile(seconds, p)
    assert figures.cycle_bucket(estimate) == figures.cycle_bucket(exact)  # type: ignore[arg-type]


@given(st.lists(durations, min_size=1, max_size=100))
def test_histogram_percentiles_are_monotone(values: list[float]) -> None:
    counts = figures.histogram_of(values, BOUNDS)
    p = figures.histogram_percentiles(counts, BOUNDS, (0, 50, 95, 99, 100), max(values))
    assert p["p0"] <= p["p50"] <= p["p95"] <= p["p99"] <= p["p100"]  # type: ignore[operator]
