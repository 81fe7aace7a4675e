"""Webhooks cannot be pointed inward, do not follow redirects, keep no credentials, stop
with their creator, and one slow receiver holds up only itself (fakes, and a local HTTP
server for the sender)."""

from __future__ import annotations

import http.server
import ipaddress
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rules_service.adapters.senders import Attempt, post_webhook
from rules_service.config import Settings, SettingsError
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.webhook_targets import AllowList, status_class
from rules_service.services import notifications, principals
from rules_service.services.delivery import DeliverySettings, Worker
from tests.unit.fakes_operations import FakeUnitOfWork, definition_of

SECRET = "s" * 20


def _public(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address("93.184.216.34")]


def _private(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address("10.1.2.3")]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork()
    fake.versions.add("expense-approval", 1, definition_of("expense-approval.yaml"))
    fake.principals.add("admin", is_admin=True)
    fake.principals.add("finance-lead")
    return fake


def _subscribe(uow: FakeUnitOfWork, url: str, **kwargs: object) -> notifications.SubscriptionView:
    return notifications.create_subscription(
        uow, url=url, events=["escalation.opened"], secret=SECRET, actor="admin",
        **{"resolve": _public, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://[::1]/x",
                                 "http://169.254.169.254/latest", "http://10.0.0.8/x",
                                 "http://[::ffff:192.168.1.1]/x"])
def test_an_internal_address_is_refused_unless_allowed(uow: FakeUnitOfWork, url: str) -> None:
    with pytest.raises(RequestInvalid) as refused:
        _subscribe(uow, url)
    assert "RULES_SERVICE_WEBHOOK_ALLOW" in str(refused.value.problems[0].message)
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0] if "[" not in url \
        else url.split("[")[1].split("]")[0]
    assert _subscribe(uow, url, allow=(host,)).url == url


def test_a_name_resolving_inward_is_refused_and_a_range_allows_it(uow: FakeUnitOfWork) -> None:
    with pytest.raises(RequestInvalid):
        _subscribe(uow, "https://hooks.internal/x", resolve=_private)
    assert _subscribe(uow, "https://hooks.internal/x", resolve=_private,
                      allow=("10.0.0.0/8",)).url == "https://hooks.internal/x"
    assert _subscribe(uow, "https://hooks.internal/y", resolve=_private,
                      allow=("hooks.internal",)).url == "https://hooks.internal/y"


def test_credentials_in_a_url_are_never_stored_or_shown(uow: FakeUnitOfWork) -> None:
    view = _subscribe(uow, "https://bob:hunter2@hooks.example.com/x")
    assert view.url == "https://hooks.example.com/x"
    [stored] = uow.subscriptions.all()
    assert "hunter2" not in stored.url


def test_a_revoked_creators_subscriptions_hear_nothing(uow: FakeUnitOfWork) -> None:
    notifications.create_subscription(
        uow, url="https://hooks.example.com/x", events=["escalation.opened"], secret=SECRET,
        ruleset="expense-approval", actor="finance-lead", resolve=_public)
    uow.principals.items["finance-lead"].revoked_at = uow.now()
    uow.outbox.add("escalation.opened", 1, uow.now(),
                   {"escalation_id": "e", "decision_id": "d", "version": 1,
                    "to_role": "business_owner", "due_at": None})
    Worker(lambda: uow).dispatch_events()  # type: ignore[arg-type,return-value]
    assert [d for d in uow.deliveries.items.values() if d.subscription_id] == []


def test_a_non_admin_reads_the_status_class_not_the_socket_error() -> None:
    assert status_class(None, "ConnectionRefusedError: [Errno 111]") == "no answer"
    assert status_class(None, "RemoteDisconnected: closed") == "no answer"
    assert status_class(403, "HTTP 403") == "HTTP 4xx"
    assert status_class(None, "refused: 10.0.0.1 is private") == "refused: 10.0.0.1 is private"


def test_one_slow_receiver_does_not_hold_up_the_others(uow: FakeUnitOfWork) -> None:
    for n in range(5):
        _subscribe(uow, f"https://slow.example.com/{n}")
    _subscribe(uow, "https://fast.example.com/x")
    uow.outbox.add("escalation.opened", 1, uow.now(),
                   {"escalation_id": "e", "decision_id": "d", "version": 1,
                    "to_role": "nobody", "due_at": None})
    fast_sent = threading.Event()
    fast_before_slow: list[bool] = []

    def receiver(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
        if "fast" in url:
            fast_sent.set()
            return Attempt(True, 200)
        fast_before_slow.append(fast_sent.wait(5))
        return Attempt(False, None, "no complete answer within 10 s")

    worker = Worker(lambda: uow, DeliverySettings(concurrency=4),  # type: ignore[arg-type,return-value]
                    webhook=receiver, rng=random.Random(1))
    worker.dispatch_events()
    assert worker.deliver_due() == (1, 5, 0)
    # The slow host was tried once (then skipped for this pass), while the fast one went.
    assert fast_before_slow == [True]


def test_settings_refuse_a_short_secret_key_and_check_the_new_addresses() -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"RULES_SERVICE_SECRET_KEY": "x"})
    assert len(Settings.from_env({"RULES_SERVICE_SECRET_KEY": "k" * 32}).secret_key) == 32
    assert Settings.from_env({"RULES_SERVICE_BASE_URL": "https://rules.example.com/"}
                             ).base_url == "https://rules.example.com"
    for bad in ("ftp://x", "rules.example.com", "https://a@b/"):
        with pytest.raises(SettingsError):
            Settings.from_env({"RULES_SERVICE_BASE_URL": bad})
    with pytest.raises(SettingsError):
        Settings.from_env({"RULES_SERVICE_WEBHOOK_ALLOW": "10.0.0.0/33"})
    allow = Settings.from_env({"RULES_SERVICE_WEBHOOK_ALLOW": "127.0.0.1, hooks.lan"})
    assert allow.webhook_allow == ("127.0.0.1", "hooks.lan")


# --------------------------------------------------------------------------- the sender


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/internal")
            self.end_headers()
        elif self.path == "/drip":  # one header line at a time, slower than the deadline
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for n in range(10):
                self.wfile.write(f"X-Drip-{n}: x\r\n".encode())
                self.wfile.flush()
                time.sleep(0.1)
            self.wfile.write(b"Content-Length: 0\r\n\r\n")
        else:
            self.send_response(204)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LOCAL = AllowList.parse(["127.0.0.1"])[0]


def test_the_sender_refuses_an_internal_address_without_connecting(receiver: str) -> None:
    attempt = post_webhook(receiver + "/ok", b"{}", {}, 5.0)
    assert not attempt.delivered and str(attempt.error).startswith("refused:")
    assert post_webhook(receiver + "/ok", b"{}", {}, 5.0, LOCAL) == Attempt(True, 204)


def test_a_redirect_is_a_failed_attempt(receiver: str) -> None:
    attempt = post_webhook(receiver + "/redirect", b"{}", {}, 5.0, LOCAL)
    assert (attempt.delivered, attempt.status) == (False, 302)


def test_the_deadline_covers_the_whole_answer(receiver: str) -> None:
    attempt = post_webhook(receiver + "/drip", b"{}", {}, 0.5, LOCAL)
    assert not attempt.delivered
    assert attempt.error == "no complete answer within 0.5 s"


# --------------------------------------------------------------------------- names, Markdown


@pytest.mark.parametrize("name", ["bob\n", "ops@example.com\n"])
def test_a_trailing_newline_is_not_part_of_a_valid_name_or_address(
        uow: FakeUnitOfWork, name: str) -> None:
    with pytest.raises(RequestInvalid):
        principals.add_principal(uow, name)  # type: ignore[arg-type]
    with pytest.raises(RequestInvalid):
        notifications.set_contact(uow, "admin", email=name)  # type: ignore[arg-type]
    with pytest.raises(RequestInvalid):
        _subscribe(uow, "mailto:" + name)


def test_markdown_shows_html_as_text() -> None:
    from api.markdown import render_diff

    page = render_diff({"ruleset": "r", "from": 1, "to": 2,
                        "summary": ["<img src=x onerror=alert(1)>"]},
                       "https://rules.example.com")
    assert "<img" not in page and "&lt;img" in page


def test_gunicorns_master_gives_its_workers_one_secret_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rules_service import gunicorn_conf

    monkeypatch.delenv("RULES_SERVICE_SECRET_KEY", raising=False)
    # The master also shares a metrics directory through the environment: keep this
    # test's own, so the apps later tests build keep their metrics in memory.
    monkeypatch.setenv(gunicorn_conf.METRICS_DIR_VARIABLE, str(tmp_path))
    setting = SimpleNamespace(default="/run/x.ctl")
    cfg = SimpleNamespace(settings={"control_socket": setting}, control_socket="/run/y.ctl",
                          bind=["127.0.0.1:8080"])
    gunicorn_conf.on_starting(SimpleNamespace(cfg=cfg))
    import os

    shared = os.environ["RULES_SERVICE_SECRET_KEY"]
    assert len(shared) >= 32
    assert Settings.from_env().secret_key == shared == Settings.from_env().secret_key
