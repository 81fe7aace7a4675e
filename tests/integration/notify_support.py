"""Real local receivers for the notification tests: an HTTP server that records webhooks
and answers as scripted, and an SMTP server (aiosmtpd) that keeps every message."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.support import free_port

WAIT_S = 30.0
"""Longest any test waits for a receiver to see something (bounded, never asserted on)."""


@dataclass
class Received:
    """One webhook request as the receiver saw it, and what it answered."""

    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that answers each POST with the next scripted status
    (200 once the script runs out). ``hold`` makes the next request wait until released."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        """The requests answered with a 2xx."""
        return [r for r in self.received if 200 <= r.answered < 300]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.hold is not None and receiver.hold.is_set():
                receiver.hold.clear()
                receiver.arrived.set()
                receiver.release.wait(WAIT_S)
                self.send_response(503)  # the sender is gone by now: not an acceptance
                self.end_headers()
                return
            with receiver.lock:
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.received.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            receiver.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free local port."""
    found = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver",
                              daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


@dataclass
class Mailbox:
    """Every message the local SMTP server accepted."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to ``address``."""
        return [m for m in self.messages if m["To"] == address]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """aiosmtpd's hook: keep the message."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port."""
    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
