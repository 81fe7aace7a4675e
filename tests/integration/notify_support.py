"""Real local receivers for the notification tests: an HTTP server that records webhooks
and answers as scripted, and an SMTP server (aiosmtpd) that keeps every message (the
``receiver`` and ``mailbox`` fixtures that start them are in tests/conftest.py)."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any

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


def handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
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

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@dataclass
class Mailbox:
    """Every message the local SMTP server accepted."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to ``address``."""
        return [m for m in self.messages if m["To"] == address]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: keep the message."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"
