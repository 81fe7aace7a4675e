"""Outbound delivery: webhooks over HTTP(S) with the standard library's urllib, email through
SMTP with smtplib. Each send returns an ``Attempt``; nothing here retries or touches the
database (the worker does both)."""

from __future__ import annotations

import email
import email.policy
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

USER_AGENT = "rules-service-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one try achieved: delivered or not, the HTTP status if any, the error if any."""

    delivered: bool
    status: int | None = None
    error: str | None = None


def post_webhook(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
    """POSTs the body; any 2xx is delivered, anything else (or no answer in time) is not."""
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status = int(response.status)
            response.read(65536)
    except urllib.error.HTTPError as exc:
        return Attempt(False, exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, None, f"{type(exc).__name__}: {reason}"[:500])
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
