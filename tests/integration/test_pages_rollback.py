"""Rolling back from the ruleset page (offered to whoever may, previewed, confirmed), the
"rolled back" label, the runbook as prose, and version changes marked on the dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from api.pages import charts
from rules_service.services.rollbacks import VersionChange
from rules_service.services.trends import Slice
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock
from tests.integration.test_pages import NAME, browser_as, live, post_form

__all__ = ["live"]

PAGE = f"/rulesets/{NAME}"


@pytest.fixture
def two_active(api: Api, live: None) -> None:
    """Version 2 (limit 150) active, version 1 (limit 100) superseded by it."""
    for who in ("appr", "biz"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/2/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 2


def rollback_panel(page: str) -> str:
    return page.split('id="rollback"')[1].split("</section>")[0] if 'id="rollback"' in page \
        else ""


@pytest.mark.parametrize("who", ["ops", "biz", "biz-backup"])
def test_rollback_is_offered_at_the_top_to_its_owners(app: Flask, two_active: None,
                                                      who: str) -> None:
    page = browser_as(app, who).get(PAGE).text
    panel = rollback_panel(page)
    assert '<option value="1" selected>version 1 (the one before)' in panel
    assert page.index('id="rollback"') < page.index('id="versions"')


@pytest.mark.parametrize("who", ["dev", "appr", "stranger"])
def test_rollback_is_never_offered_to_others(app: Flask, two_active: None, who: str) -> None:
    client = browser_as(app, who)
    assert rollback_panel(client.get(PAGE).text) == ""
    refused = client.get(f"{PAGE}/rollback?to_version=1")
    assert refused.status_code == 403 and "Not allowed" in refused.text


def test_the_preview_says_what_changes_and_nothing_happens_until_confirmed(
        app: Flask, two_active: None, api: Api) -> None:
    client = browser_as(app, "ops")
    preview = client.get(f"{PAGE}/rollback?to_version=1")
    assert preview.status_code == 200
    assert "What changes from version 2 to version 1" in preview.text
    assert "Lowered limit from 150 to 100" in preview.text
    assert 'name="csrf_token"' in preview.text and 'value="1"' in preview.text
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 2
    done = post_form(client, f"{PAGE}/rollback?to_version=1", f"{PAGE}/rollback",
                     {"to_version": "1", "reason": "limit too high"})
    assert done.status_code == 303
    after = client.get(done.headers["Location"]).text
    assert "Version 1 is active again; version 2 was rolled back" in after
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 1


def test_a_preview_of_no_version_or_the_active_one_is_refused(app: Flask,
                                                               two_active: None) -> None:
    client = browser_as(app, "ops")
    assert client.get(f"{PAGE}/rollback?to_version=x").status_code == 303
    active = client.get(f"{PAGE}/rollback?to_version=2")
    assert active.status_code == 409 and "already active" in active.text
    pending = client.get(f"{PAGE}/rollback?to_version=9")
    assert pending.status_code == 404


def test_the_versions_table_says_rolled_back_from_the_audit_trail(
        app: Flask, two_active: None, api: Api) -> None:
    client = browser_as(app, "ops")
    before = client.get(PAGE).text
    assert "rolled back</span>" not in before  # version 1 was left by an activation
    assert api.post(f"/v1/rulesets/{NAME}/rollback", {"to_version": 1, "reason": "too high"},
                    who="ops").status_code == 200
    page = client.get(PAGE).text
    rows = dict(re.findall(r'versions/(\d+)">\d+</a></th>\s*<td><span class="status '
                           r'status-(\w+)">', page))
    assert rows == {"2": "rolled_back", "1": "active"}
    assert '<span class="status status-rolled_back">rolled back</span>' in page


def test_the_runbook_reads_as_prose(app: Flask, two_active: None) -> None:
    page = browser_as(app, "ops").get(PAGE).text
    runbook = page.split('<h2 id="runbook">')[1].split('<h2 id="audit">')[0]
    assert "<h3>Purpose</h3><p>Refund quickly.</p>" in runbook
    assert "who have 4 hours to resolve it" in runbook
    assert "it goes on to appr;" in runbook
    assert "Version 2 has decided since" in runbook
    assert "to version 1 (the version before this one)" in runbook
    assert f"<code>POST /v1/rulesets/{NAME}/rollback</code>" in runbook
    for dump in ("Method", "Window hours", "Path"):
        assert f"<dt>{dump}</dt>" not in runbook


@pytest.mark.parametrize("chosen", [f"&ruleset={NAME}", ""])
def test_the_dashboard_marks_each_version_change(app: Flask, two_active: None, api: Api,
                                                 clock: FakeClock, chosen: str) -> None:
    clock.advance(timedelta(minutes=20))
    assert api.post(f"/v1/rulesets/{NAME}/rollback", {"to_version": 1, "reason": "too high"},
                    who="ops").status_code == 200
    page = browser_as(app, "ops").get(f"/dashboard?window=1h{chosen}").text
    throughput = page.split('data-chart="throughput"')[1].split("</svg>")[0]
    markers = re.findall(r'<g class="marker"><title>([^<]+)</title><line x1="([\d.]+)"'
                         r'.*?>([^<]+)</text></g>', throughput)
    # Both activations of the first minutes share a marker; the rollback has its own.
    assert [label for _, _, label in markers] == ["v1→v2", "v1"]
    (first, x1, _), (last, x2, _) = markers
    assert float(x1) < float(x2)
    assert first.count(f"{NAME}: version") == 2 and "version 2 activated by biz" in first
    assert last.startswith(f"{NAME}: version 1 rolled back to by ops")
    assert page.count('<g class="marker">') == 2 * 7  # on every chart
    listed = page.split('id="version-changes"')[1].split("</p>")[0]
    assert "version 2 activated by biz" in listed and "version 1 rolled back to by ops" in listed


def test_version_changes_far_apart_get_a_marker_each_close_ones_share_one() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    slices = [Slice(start, start + timedelta(hours=1), {})]

    def change(minute: float, version: int) -> VersionChange:
        return VersionChange(NAME, version, None, "activated", "biz",
                             start + timedelta(minutes=minute))
    marks = charts.change_markers(slices, [change(30, 3), change(0, 1), change(1, 2),
                                           change(1.5, 4), change(61, 5)])
    assert [(round(m.at, 3), m.label) for m in marks] == [(0, "v1→v2→v4"), (0.5, "v3")]
    assert marks[0].title.count("\n") == 2
    crowded = charts.change_markers(slices, [change(m / 10, m) for m in range(1, 6)])
    assert [m.label for m in crowded] == ["5 changes→v5"]
    other = VersionChange("payouts", 7, None, "activated", "biz", start)
    assert [m.label for m in charts.change_markers(slices, [change(0, 1), other])] == [
        "2 changes"]


def test_the_dashboard_marks_nothing_outside_its_window(app: Flask, two_active: None,
                                                        clock: FakeClock) -> None:
    clock.advance(timedelta(hours=2))
    page = browser_as(app, "ops").get(f"/dashboard?window=1h&ruleset={NAME}").text
    assert '<g class="marker">' not in page and 'id="version-changes"' not in page
