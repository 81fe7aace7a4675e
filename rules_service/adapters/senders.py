"""Outbound delivery: webhooks over HTTP(S) with the standard library's http.client, email through
SMTP with smtplib. Each send returns an ``Attempt``; nothing here retries or touches the
database (the worker does both)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import http.client
import ipaddress
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rules_service.domain.webhook_targets import Address, AllowList, literal_address

USER_AGENT = "rules-service-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one try achieved: delivered or not, the HTTP status if any, the error if any."""

    delivered: bool
    status: int | None = None
    error: str | None = None


def resolve(host: str, port: int) -> list[Address]:
    """The addresses a host name resolves to (a literal address is itself); [] when it
    does not resolve."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0])
                              for info in found))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address already checked, with the certificate checked for the host."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to an address already checked (the Host header names the host)."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post_webhook(url: str, body: bytes, headers: dict[str, str], timeout_s: float,
                 allow: AllowList | None = None) -> Attempt:
    """POSTs the body to an address the allow list permits; any 2xx is delivered. A
    redirect is not followed (a failed attempt), and the whole exchange, from resolving
    the host to the last byte of the answer, must end within ``timeout_s``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return Attempt(False, None, "refused: the URL's port is not a number")
    addresses = resolve(host, port)
    if not addresses:
        return Attempt(False, None, f"refused: {host} does not resolve")
    refusal = (allow or AllowList()).refusal(host, addresses)
    if refusal is not None:
        return Attempt(False, None, f"refused: {refusal}")
    kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = kind(host, str(addresses[0]), port, timeout_s)
    # A watchdog ends the exchange at the deadline: a receiver that answers one byte at a
    # time never lets a per-read timeout fire.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout_s, expire)
    watchdog.start()
    try:
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        status = int(response.status)
        response.read(65536)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            return Attempt(False, None, f"no complete answer within {timeout_s:g} s")
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():
        return Attempt(False, None, f"no complete answer within {timeout_s:g} s")
    if 200 <= status < 300:
        return Attempt(True, status)
    return Attempt(False, status, f"HTTP {status}")


@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes out: host, port, sender, optional login and STARTTLS."""

    host: str = "localhost"
    port: int = 25
    sender: str = "rules-service@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False


def _message(smtp: SmtpSettings, to: str, subject: str, text: str, html: str,
             message_id_key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=message_id_key.replace("-", ""))
    message["X-Rules-Event-Id"] = message_id_key
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def write_email(folder: Path, smtp: SmtpSettings, to: str, subject: str, text: str,
                html: str, *, message_id_key: str) -> Attempt:
    """Writes the message to ``folder`` as one ``.eml`` file (a local mail sink, such as
    the demo's, instead of a relay); the file appears whole or not at all."""
    message = _message(smtp, to, subject, text, html, message_id_key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{message_id_key}-{to}.eml".replace("/", "_")
        partial = folder / (name + ".part")
        partial.write_bytes(message.as_bytes())
        partial.replace(folder / name)
    except OSError as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
    return Attempt(True, 250)


def read_emails(folder: Path, limit: int) -> list[EmailMessage]:
    """The newest ``limit`` messages written by ``write_email``, newest first."""
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.name, reverse=True)[:limit]
    policy = email.policy.default
    return [email.message_from_bytes(f.read_bytes(), _class=EmailMessage, policy=policy)
            for f in files]


def send_email(smtp: SmtpSettings, to: str, subject: str, text: str, html: str,
               *, message_id_key: str, timeout_s: float) -> Attempt:
    """Sends one message with a plain-text and an HTML part; the event id goes into the
    headers so a mail client (or a person) can tell a retry from a new event."""
    message = _message(smtp, to, subject, text, html, message_id_key)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
    except smtplib.SMTPResponseException as exc:
        return Attempt(False, int(exc.smtp_code), f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                       [:500])
    except (smtplib.SMTPException, OSError) as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
    return Attempt(True, 250)
