"""The weekly report on the real database: its figures are the dashboard's for the same
weeks, the command prints and sends it (email to the owners, the event to webhooks), the
worker sends it once each Monday at 07:00 UTC however many workers run, and the page and
the JSON route show it.

The world is built through the HTTP API on a hand-moved clock: refunds version 1 goes
live in the week before (proposed, signed after 2h and 3h: approval delay 3h), version 2
in the reported week (signed after 1h and 5h: 5h). The week before has 10 decisions
(8 approved, 2 escalated: 20%), the reported week 12 (9 approved, 3 escalated: 25%); one
escalation of each week is resolved, after 1h and 2h. Orders has no decision either week.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from rules_service.adapters import rollup_fold
from rules_service.adapters.orm import OutboxEventRow, WeeklyReportRow
from rules_service.bootstrap import Container
from rules_service.cli import main
from rules_service.domain import weekly_report as words
from rules_service.services import accounts, notifications, weekly_report
from rules_service.services.delivery import DeliverySettings, Worker
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import PEOPLE, FakeClock, definition
from tests.integration.notify_support import Mailbox, Receiver
from tests.integration.test_pages_sign_in import PASSWORD, sign_in

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECRET = "a-long-enough-shared-secret"
BASE_URL = "https://rules.example.com"


def _evaluate(api: Api, clock: FakeClock, at: datetime, amounts: list[int]) -> list[dict]:
    out = []
    for i, amount in enumerate(amounts):
        clock.now = at + i * timedelta(minutes=10)
        response = api.post("/v1/rulesets/refunds/evaluate", {"input": {"amount": amount}},
                            who="bot")
        assert response.status_code == 200, response.get_json()
        out.append(response.get_json())
    return out


def _go_live(api: Api, clock: FakeClock, at: datetime, name: str, number: int, limit: int,
             first: timedelta, second: timedelta, **changes: Any) -> None:
    clock.now = at
    response = api.post(f"/v1/rulesets/{name}/versions",
                        {"definition": definition(limit, name=name, **changes)})
    assert response.status_code == 201, response.get_json()
    for signer, after in (("biz", first), ("appr", second)):
        clock.now = at + after
        assert api.post(f"/v1/rulesets/{name}/versions/{number}/signoffs",
                        {"decision": "approve"}, who=signer).status_code == 201


def _resolve(api: Api, clock: FakeClock, answer: dict, after: timedelta) -> None:
    clock.now = clock.now + after
    escalation = answer["escalation"]["id"]
    assert api.post(f"/v1/escalations/{escalation}/resolve",
                    {"resolution": "approve"}).status_code in (200, 201)


@pytest.fixture
def week(api: Api, clock: FakeClock, container: Container) -> date:
    """The world of the module docstring, in the last complete week before the real now
    (the command reads the real clock); the clock is back at now afterwards. Returns the
    reported week's Monday."""
    now = clock.now
    monday = words.last_complete_week(now)
    start, _ = words.week_bounds(monday)
    before = start - words.WEEK
    _go_live(api, clock, before - 3 * DAY, "orders", 1, 100, HOUR, 2 * HOUR,
             title="Orders")
    _go_live(api, clock, before + DAY, "refunds", 1, 100, 2 * HOUR, 3 * HOUR)
    answers = _evaluate(api, clock, before + 2 * DAY, [5] * 8 + [500] * 2)
    _resolve(api, clock, answers[-1], HOUR)
    _go_live(api, clock, start + DAY, "refunds", 2, 200, HOUR, 5 * HOUR)
    answers = _evaluate(api, clock, start + 2 * DAY, [5] * 9 + [500] * 3)
    _resolve(api, clock, answers[-1], 2 * HOUR)
    rollup_fold.fold_pending(container.engine)  # what the background fold does within 2 s
    clock.now = now
    return monday


def _outbox(container: Container, event_type: str = "report.weekly") -> list[OutboxEventRow]:
    with container.engine.connect() as conn:
        return list(conn.execute(select(OutboxEventRow).where(
            OutboxEventRow.type == event_type).order_by(OutboxEventRow.occurred_at)))


def _figure(entry: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        entry = entry[key]
    return entry


# --------------------------------------------------------------------------- the figures


def test_the_reports_figures_are_the_dashboards_for_the_same_weeks(api: Api,
                                                                     week: date) -> None:
    report = api.get(f"/v1/reports/weekly?week={week.isoformat()}")
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    assert body["week"] == {"start": week.isoformat(),
                            "end": (week + words.WEEK).isoformat()}
    refunds = next(r for r in body["rulesets"] if r["ruleset"] == "refunds")
    start, end = words.week_bounds(week)
    for key, (since, until) in {"this_week": (start, end),
                                "week_before": (start - words.WEEK, start)}.items():
        board = api.get("/v1/dashboard", query_string={
            "ruleset": "refunds", "since": since.isoformat(),
            "until": until.isoformat()}).get_json()["rulesets"][0]
        assert refunds["dashboard"][key] == board
        for figure, change in zip(words.FIGURES, refunds["figures"], strict=True):
            assert change[key] == _figure(board, figure.path), figure.key
    shown = {c["figure"]: (c["this_week"], c["week_before"], c["direction"])
             for c in refunds["figures"]}
    assert shown["decisions"] == (12, 10, "up")
    assert shown["exception_rate"] == (0.25, 0.2, "up")
    assert shown["fallbacks"] == (0, 0, "same")
    assert shown["approval_delay"] == (5 * 3600, 3 * 3600, "up")
    # 9 and 8 approved, valued at the active version's 5 minutes each.
    assert shown["hours_saved"] == (pytest.approx(0.75), pytest.approx(8 * 5 / 60), "up")
    cycle_now, cycle_before, _ = shown["cycle_time"]
    assert cycle_now is not None and cycle_before is not None and cycle_now > cycle_before
    assert refunds["recipients"] == ["biz", "biz-backup", "ops", "ops-backup"]
    assert refunds["headline"] == ("exception rate 25.0% (up from 20.0%, +5.0 percentage "
                                   "points)")
    orders = next(r for r in body["rulesets"] if r["ruleset"] == "orders")
    assert orders["headline"] == "no decisions"


def test_a_week_that_is_no_date_or_not_over_is_refused_naming_it(api: Api, week: date) -> None:
    for bad, says in (("2026-02-30", "is not a date"),
                      ((week + 2 * words.WEEK).isoformat(), "is not over yet")):
        response = api.get(f"/v1/reports/weekly?week={bad}")
        assert response.status_code == 422
        [problem] = error_of(response)["details"]
        assert problem["place"] == "week" and says in problem["message"]
    assert api.get("/v1/reports/weekly?ruleset=nope").status_code == 404


# --------------------------------------------------------------------------- the command


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_SERVICE_BASE_URL", BASE_URL)


@pytest.mark.usefixtures("cli_env")
def test_the_command_prints_each_ruleset_beside_the_week_before(
        week: date, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "weekly"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Weekly report for the week of Monday {week.isoformat()}")
    assert "percentage points; counts, times and hours as a relative change" in out
    lines = out.splitlines()
    assert "refunds: Refunds (version 2 active)" in lines
    assert "  business owner: biz (backup biz-backup); operations owner: ops (backup " \
           "ops-backup)" in lines
    assert "  exception rate 25.0% (up from 20.0%, +5.0 percentage points)" in lines
    assert "  decisions 12 (up from 10, +20.0%), 0.1 per hour" in lines
    assert "  approval delay (median, proposed to active) 5h 00m (up from 3h 00m, +66.7%)" \
        in lines
    assert "  fallback activations 0 (the same as the week before)" in lines
    assert f"  dashboard: {BASE_URL}/dashboard?ruleset=refunds&window=7d" in lines
    assert "orders: Orders (version 1 active)" in lines
    assert "  no decisions this week, nor the week before" in lines
    assert main(["report", "weekly", "--ruleset", "orders",
                 "--week", (week - DAY).isoformat()]) == 0
    earlier = capsys.readouterr().out
    assert f"week of Monday {(week - words.WEEK).isoformat()}" in earlier
    assert "refunds:" not in earlier and "orders: Orders" in earlier


@pytest.mark.usefixtures("cli_env")
def test_the_command_refuses_bad_input_naming_each_problem(
        week: date, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "weekly", "--week", "last monday"]) == 1
    assert "week: 'last monday' is not a date written YYYY-MM-DD" in capsys.readouterr().err
    assert main(["report", "weekly", "--week", (week + words.WEEK).isoformat()]) == 1
    assert "is not over yet" in capsys.readouterr().err
    assert main(["report", "weekly", "--ruleset", "nope", "--send"]) == 1
    assert "no ruleset named nope" in capsys.readouterr().err
    assert main(["report", "weekly", "--json", "--ruleset", "refunds"]) == 0
    assert '"ruleset": "refunds"' in capsys.readouterr().out


def _worker(container: Container, mailbox: Mailbox, **env: str) -> Worker:
    settings = DeliverySettings.from_env({
        "RULES_SERVICE_SMTP_HOST": mailbox.host, "RULES_SERVICE_SMTP_PORT": str(mailbox.port),
        "RULES_SERVICE_BASE_URL": BASE_URL, "RULES_SERVICE_WEBHOOK_ALLOW": "127.0.0.1",
        "RULES_SERVICE_NOTICE_DIGEST": "0", **env})
    return Worker(container.uow, settings, clock=container.clock, rng=random.Random(3))


def _drain(worker: Worker) -> None:
    for _ in range(20):
        if not worker.run_once().busy:
            return
    raise AssertionError("the worker was still busy after 20 passes")


@pytest.mark.usefixtures("cli_env")
def test_send_mails_the_owners_and_tells_webhooks_once(
        week: date, api: Api, container: Container, clock: FakeClock, mailbox: Mailbox,
        receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    for name in PEOPLE:
        notifications.set_contact(container.uow(), name, email=f"{name}@example.com")
    worker = _worker(container, mailbox, RULES_SERVICE_WEEKLY_REPORT="off")
    _drain(worker)  # the world's own notices go first
    mailbox.messages.clear()
    clock.now = datetime.now(UTC) - timedelta(seconds=5)
    assert api.post("/v1/subscriptions", {"url": receiver.url, "events": ["report.weekly"],
                                          "ruleset": "refunds", "secret": SECRET}
                    ).status_code == 201
    clock.now = datetime.now(UTC)
    # A proposal told to biz at the same moment: the report still comes as its own email.
    assert api.post("/v1/rulesets/refunds/versions",
                    {"definition": definition(300)}).status_code == 201
    assert main(["report", "weekly", "--ruleset", "refunds", "--send"]) == 0
    assert "sent: 1 report.weekly event(s) queued" in capsys.readouterr().out
    assert len(_outbox(container)) == 1
    clock.advance(timedelta(seconds=5))
    _drain(worker)
    [hook] = receiver.accepted()
    assert hook.headers["X-Rules-Event"] == "report.weekly"
    body = json.loads(hook.body)
    assert set(body) == {"id", "type", "occurred_at", "ruleset", "data"}
    assert (body["type"], body["ruleset"]) == ("report.weekly", "refunds")
    assert body["data"]["week_start"] == week.isoformat()
    assert {f["figure"]: f["this_week"] for f in body["data"]["figures"]}["decisions"] == 12
    reports = [m for m in mailbox.messages if "Weekly report" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in reports) == sorted(
        f"{n}@example.com" for n in ("biz", "biz-backup", "ops", "ops-backup"))
    assert any("was proposed" in str(m["Subject"]) for m in mailbox.to("biz@example.com"))
    assert len(mailbox.to("biz@example.com")) == 2
    mail = mailbox.to("ops@example.com")[0]
    assert str(mail["Subject"]) == (f"[rules-service] Weekly report of refunds, week of "
                                    f"{week.isoformat()}: exception rate 25.0% (up from "
                                    f"20.0%, +5.0 percentage points)")
    text = mail.get_body(("plain",)).get_content()
    assert f"Open it: {BASE_URL}/reports/weekly?week={week.isoformat()}&ruleset=refunds" in text
    assert "exception rate: 25.0% (up from 20.0%, +5.0 percentage points)" in text
    assert "owners: business owner: biz (backup biz-backup); operations owner: ops" in text
    assert f"dashboard: {BASE_URL}/dashboard?ruleset=refunds&window=7d" in text


# --------------------------------------------------------------------------- the worker


MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def _sent_weeks(container: Container) -> list[date]:
    with container.engine.connect() as conn:
        return list(conn.scalars(select(WeeklyReportRow.week_start)
                                 .order_by(WeeklyReportRow.week_start)))


def test_the_worker_sends_it_each_monday_at_seven_once(
        api: Api, container: Container, clock: FakeClock, mailbox: Mailbox) -> None:
    _go_live(api, clock, MONDAY - 10 * DAY, "refunds", 1, 100, HOUR, HOUR)
    clock.now = MONDAY + 7 * HOUR - timedelta(seconds=1)
    worker = _worker(container, mailbox)
    worker.run_once()
    assert _outbox(container) == []
    clock.advance(timedelta(seconds=1))
    worker.run_once()
    [event] = _outbox(container)
    assert event.data["week_start"] == "2026-11-23"
    assert event.occurred_at == clock.now
    clock.advance(HOUR)
    worker.run_once()
    restarted = _worker(container, mailbox)  # a restart, or a second worker
    restarted.run_once()
    clock.advance(6 * DAY)
    restarted.run_once()
    assert len(_outbox(container)) == 1
    clock.now = MONDAY + words.WEEK + 7 * HOUR
    worker.run_once()
    restarted.run_once()
    assert [e.data["week_start"] for e in _outbox(container)] == ["2026-11-23", "2026-11-30"]
    assert _sent_weeks(container) == [date(2026, 11, 23), date(2026, 11, 30)]


def test_the_worker_sends_nothing_when_the_weekly_report_is_off(
        api: Api, container: Container, clock: FakeClock, mailbox: Mailbox) -> None:
    _go_live(api, clock, MONDAY - 10 * DAY, "refunds", 1, 100, HOUR, HOUR)
    clock.now = MONDAY + 8 * HOUR
    for word in ("off", "false", "0"):
        _worker(container, mailbox, RULES_SERVICE_WEEKLY_REPORT=word).run_once()
    assert _outbox(container) == [] and _sent_weeks(container) == []


def test_workers_racing_at_seven_send_the_week_once(
        api: Api, container: Container, clock: FakeClock) -> None:
    _go_live(api, clock, MONDAY - 10 * DAY, "refunds", 1, 100, HOUR, HOUR)
    _go_live(api, clock, MONDAY - 9 * DAY, "orders", 1, 100, HOUR, HOUR, title="Orders")
    clock.now = MONDAY + 7 * HOUR
    start = threading.Barrier(4)
    sent: list[date | None] = []

    def race() -> None:
        start.wait()
        sent.append(weekly_report.send_scheduled_weekly_report(container.uow))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(sent, key=lambda d: d is None) == [date(2026, 11, 23), None, None, None]
    with container.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(OutboxEventRow)
                           .where(OutboxEventRow.type == "report.weekly")) == 2


# --------------------------------------------------------------------------- the page


def test_the_page_shows_each_figure_beside_the_week_before(
        app: Flask, week: date, container: Container) -> None:
    accounts.set_password(container.uow(), "ops", PASSWORD)
    client = app.test_client()
    assert sign_in(client, "ops").status_code == 303
    page = client.get("/reports/weekly")
    assert page.status_code == 200
    html = page.text
    assert f"week of Monday {week.isoformat()}" in html
    assert "exception rate</th><td>25.0% (up from 20.0%, +5.0 percentage points)" in html
    assert "decisions</th><td>12 (up from 10, +20.0%), 0.1 per hour" in html
    orders = html[html.index('id="report-orders"'):].split("</section>")[0]
    assert "No decisions this week, nor the week before." in orders
    assert "approval delay" not in orders  # a quiet ruleset's empty figures are left out
    assert "business owner: biz (backup biz-backup)" in html
    assert 'href="/dashboard?ruleset=refunds&amp;window=7d"' in html
    earlier = client.get(f"/reports/weekly?ruleset=refunds&week={(week - DAY).isoformat()}")
    assert earlier.status_code == 200 and 'id="report-orders"' not in earlier.text
    assert "no decisions (the week before: " not in earlier.text
    bad = client.get("/reports/weekly?week=someday")
    assert bad.status_code == 422 and "is not a date written YYYY-MM-DD" in bad.text
    assert 'id="weekly-report-link"' in client.get("/dashboard").text
