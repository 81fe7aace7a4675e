"""The weekly report's rules without a database: the week, the comparison of each figure
with the week before, and the words people read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain import weekly_report as w
from rules_service.domain.notifications import EVENT_TYPES, page_path, summary

BY_KEY = {f.key: f for f in w.FIGURES}
NOW = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)  # a Thursday


def entry(count: int, escalated: int = 0, fallbacks: int = 0, hours: float = 0.0,
          cycle_p50: float | None = None, delay_median: float | None = None) -> dict:
    """One ruleset's figures shaped as the dashboard gives them."""
    return {"decisions": {"count": count, "per_hour": count / 168},
            "exception_rate": escalated / count if count else None,
            "fallbacks": {"count": fallbacks, "rate": fallbacks / count if count else None},
            "escalations": {"resolution_time_seconds": {"p50": cycle_p50}},
            "change_approval": {"proposed_to_active_seconds": {"median": delay_median}},
            "impact": {"hours_saved": hours}}


# --------------------------------------------------------------------------- the week


def test_a_week_runs_from_monday_to_monday_utc() -> None:
    assert w.week_start(date(2026, 12, 3)) == date(2026, 11, 30)
    assert w.week_start(date(2026, 11, 30)) == date(2026, 11, 30)
    assert w.week_start(date(2026, 12, 6)) == date(2026, 11, 30)
    start, end = w.week_bounds(date(2026, 11, 23))
    assert (start, end) == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))


def test_the_default_week_is_the_last_complete_one() -> None:
    assert w.last_complete_week(NOW) == date(2026, 11, 23)
    assert w.last_complete_week(datetime(2026, 11, 30, 0, 0, tzinfo=UTC)) == date(2026, 11, 23)
    assert w.last_complete_week(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == date(2026, 11, 16)


def test_any_day_names_its_week_and_a_week_not_over_is_refused_with_the_reason() -> None:
    assert w.parse_week("2026-11-26", NOW) == date(2026, 11, 23)
    with pytest.raises(ValueError, match="not over yet.*2026-11-23"):
        w.parse_week("2026-12-01", NOW)
    for bad in ("2026-13-01", "yesterday", "20261123", ""):
        with pytest.raises(ValueError, match="is not a date written YYYY-MM-DD"):
            w.parse_week(bad, NOW)


def test_the_scheduled_report_is_due_from_monday_seven_utc() -> None:
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    assert w.scheduled_week(monday + timedelta(hours=6, minutes=59)) is None
    assert w.scheduled_week(monday + timedelta(hours=7)) == date(2026, 11, 23)
    assert w.scheduled_week(monday + timedelta(days=6, hours=23)) == date(2026, 11, 23)
    assert w.scheduled_week(monday + timedelta(days=7, hours=7)) == date(2026, 11, 30)


@given(st.datetimes(min_value=datetime(2000, 1, 3), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)))
def test_the_last_complete_week_has_ended_and_the_next_one_has_not(now: datetime) -> None:
    monday = w.last_complete_week(now)
    start, end = w.week_bounds(monday)
    assert monday.weekday() == 0
    assert end <= now < end + w.WEEK
    assert w.parse_week(monday.isoformat(), now) == monday
    assert w.parse_week((monday + timedelta(days=6)).isoformat(), now) == monday


# --------------------------------------------------------------------------- the words


def test_a_rate_compares_in_percentage_points() -> None:
    change = w.compare(BY_KEY["exception_rate"], 0.12, 0.08)
    assert change.sentence == "exception rate 12.0% (up from 8.0%, +4.0 percentage points)"
    assert (change.direction, change.difference, change.unit) == ("up", 4.0,
                                                                  "percentage points")
    down = w.compare(BY_KEY["exception_rate"], 0.05, 0.08)
    assert down.words == "5.0% (down from 8.0%, -3.0 percentage points)"


def test_counts_times_and_hours_compare_as_a_relative_change() -> None:
    assert w.compare(BY_KEY["decisions"], 1234, 1100).sentence == \
        "decisions 1,234 (up from 1,100, +12.2%)"
    cycle = w.compare(BY_KEY["cycle_time"], 7500.0, 11400.0)
    assert cycle.words == "2h 05m (down from 3h 10m, -34.2%)"
    assert cycle.unit == "percent"
    assert w.compare(BY_KEY["hours_saved"], 12.5, 10.0).words == "12.5 (up from 10.0, +25.0%)"
    assert w.compare(BY_KEY["approval_delay"], 3 * 86400.0, 2 * 86400 + 3600 * 5).words == \
        "3d 0h (up from 2d 5h, +35.8%)"  # 259200 / 190800


def test_a_change_from_zero_has_a_direction_but_no_percentage() -> None:
    change = w.compare(BY_KEY["fallbacks"], 3, 0)
    assert change.words == "3 (up from 0)"
    assert change.difference is None


def test_values_that_read_the_same_are_the_same() -> None:
    change = w.compare(BY_KEY["exception_rate"], 0.12001, 0.12)
    assert change.direction == "same"
    assert change.words == "12.0% (the same as the week before)"


def test_an_empty_week_says_no_decisions() -> None:
    changes = w.compare_weeks(entry(0), entry(10, escalated=2, hours=1.5))
    words = {c.key: c.sentence for c in changes}
    assert words["decisions"] == "decisions: no decisions (the week before: 10)"
    assert words["exception_rate"] == "exception rate: no decisions (the week before: 20.0%)"
    assert words["fallbacks"] == "fallback activations: no decisions (the week before: 0)"
    assert words["hours_saved"] == "hours saved: no decisions (the week before: 1.5)"
    assert words["cycle_time"].endswith("no escalation resolved (nor the week before)")
    assert w.headline(changes) == "no decisions"
    back = {c.key: c for c in w.compare_weeks(entry(4, escalated=1), entry(0))}
    assert back["exception_rate"].words == "25.0% (no decisions the week before)"
    assert back["exception_rate"].direction == "none"


def test_every_figure_of_the_report_is_read_in_order() -> None:
    changes = w.compare_weeks(entry(20, escalated=5, fallbacks=1, hours=2.0, cycle_p50=3600,
                                    delay_median=7200),
                              entry(10, escalated=1, fallbacks=1, hours=1.0, cycle_p50=1800))
    assert [c.key for c in changes] == ["decisions", "cycle_time", "exception_rate",
                                        "approval_delay", "fallbacks", "hours_saved"]
    assert [c.direction for c in changes] == ["up", "up", "up", "none", "same", "up"]
    assert w.headline(changes) == "exception rate 25.0% (up from 10.0%, +15.0 percentage points)"


@given(st.floats(0, 1), st.floats(0, 1))
def test_the_direction_agrees_with_the_numbers_shown(now: float, before: float) -> None:
    change = w.compare(BY_KEY["exception_rate"], now, before)
    shown = w.format_value(w.Kind.RATE, now), w.format_value(w.Kind.RATE, before)
    if change.direction == "same":
        assert shown[0] == shown[1]
    else:
        assert shown[0] != shown[1]
        assert (change.direction == "up") == (now > before)
        assert change.difference is not None
        assert (change.difference > 0) == (now > before) or change.difference == 0.0
        assert change.words.startswith(f"{shown[0]} ({change.direction} from {shown[1]}")


@given(st.integers(0, 10**7), st.integers(1, 10**7))
def test_a_count_change_is_stated_in_percent_of_the_week_before(now: int, before: int) -> None:
    change = w.compare(BY_KEY["decisions"], now, before)
    if now == before:
        assert change.direction == "same"
    else:
        assert change.difference == round((now - before) / before * 100, 1)
        assert f"{change.difference:+.1f}%" in change.words


def test_durations_read_in_their_largest_units() -> None:
    assert [w.format_duration(s) for s in (0, 59.4, 60, 3599, 3600, 7500, 86400, 90061)] == \
        ["0s", "59s", "1m", "59m", "1h 00m", "2h 05m", "1d 0h", "1d 1h"]


# --------------------------------------------------------------------------- the people


DEFINITION = {"owners": {
    "business_owner": {"primary": "biz", "backup": "biz-backup"},
    "operations_owner": {"primary": "ops", "backup": None},
    "approver": {"primary": "appr", "backup": "appr-backup"}}}


def test_the_report_goes_to_business_and_operations_owners_primary_and_backup() -> None:
    owners = w.owners_of(DEFINITION)
    assert w.recipients(owners) == ["biz", "biz-backup", "ops"]
    assert w.owners_words(owners) == "business owner: biz (backup biz-backup); operations " \
                                     "owner: ops"
    same = w.owners_of({"owners": {"business_owner": {"primary": "a", "backup": "b"},
                                   "operations_owner": {"primary": "b", "backup": "a"}}})
    assert w.recipients(same) == ["a", "b"]
    assert w.owners_words(w.owners_of({})) == "no owners named"


def test_the_printed_part_of_a_ruleset_names_it_its_owners_and_the_dashboard() -> None:
    changes = w.compare_weeks(entry(12, escalated=3), entry(10, escalated=2))
    lines = w.ruleset_lines("refunds", "Refunds", 2, w.owners_of(DEFINITION), changes, 0.5,
                            "https://rules.example.com/dashboard?ruleset=refunds&window=7d")
    assert lines[0] == "refunds: Refunds (version 2 active)"
    assert lines[1] == "  business owner: biz (backup biz-backup); operations owner: ops"
    assert "  decisions 12 (up from 10, +20.0%), 0.5 per hour" in lines
    assert "  exception rate 25.0% (up from 20.0%, +5.0 percentage points)" in lines
    assert lines[-1] == "  dashboard: https://rules.example.com/dashboard?ruleset=refunds&window=7d"
    assert "percentage points" in w.heading(date(2026, 11, 23))
    assert "Monday 2026-11-23" in w.heading(date(2026, 11, 23))


def test_the_report_is_an_event_with_its_sentence_and_page() -> None:
    assert "report.weekly" in EVENT_TYPES
    data = {"week_start": "2026-11-23", "headline": "exception rate 12.0% (up from 8.0%)"}
    assert summary("report.weekly", "refunds", data) == \
        "Weekly report of refunds, week of 2026-11-23: exception rate 12.0% (up from 8.0%)"
    assert page_path("report.weekly", "refunds", data) == \
        "/reports/weekly?week=2026-11-23&ruleset=refunds"
    assert page_path("report.weekly", "refunds", {"week_start": "junk"}) is None


def test_a_ruleset_quiet_both_weeks_says_so_once() -> None:
    changes = w.compare_weeks(entry(0, delay_median=3600), entry(0))
    lines = w.ruleset_lines("orders", "Orders", 1, {}, changes, None, None)
    assert lines == ["orders: Orders (version 1 active)", "  no owners named",
                     "  no decisions this week, nor the week before",
                     "  approval delay (median, proposed to active) 1h 00m (no version "
                     "activated the week before)"]


def test_the_email_lists_each_figure_the_owners_and_the_links() -> None:
    from rules_service.services.notices import Notice, email_content

    changes = w.compare_weeks(entry(12, escalated=3), entry(10, escalated=2))
    data = {"week_start": "2026-11-23", "week_end": "2026-11-30",
            "owners": w.owners_of(DEFINITION), "headline": w.headline(changes),
            "figures": [c.to_dict() for c in changes]}
    notice = Notice("ev-1", "report.weekly", NOW, "refunds", data)
    subject, text, html = email_content([notice], "https://rules.example.com")
    assert subject == ("[rules-service] Weekly report of refunds, week of 2026-11-23: "
                       "exception rate 25.0% (up from 20.0%, +5.0 percentage points)")
    lines = text.splitlines()
    assert "Open it: https://rules.example.com/reports/weekly?week=2026-11-23&ruleset=refunds" \
        in lines
    assert "decisions: 12 (up from 10, +20.0%)" in lines
    assert "exception rate: 25.0% (up from 20.0%, +5.0 percentage points)" in lines
    assert "owners: business owner: biz (backup biz-backup); operations owner: ops" in lines
    assert "week: 2026-11-23 00:00 to 2026-11-30 00:00 UTC" in lines
    assert "dashboard: https://rules.example.com/dashboard?ruleset=refunds&window=7d" in lines
    assert "figures:" not in text  # the raw data is not dumped
    assert "+5.0 percentage points" in html
