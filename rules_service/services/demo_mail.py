"""The demo's mail: every demo person gets an address, and the worker started by the demo
writes their email to a folder that the page ``/mail`` shows, so a newcomer sees a notice
arrive without setting up a mail server."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rules_service.adapters.senders import read_emails
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import NotFound
from rules_service.services import notifications, principals

DEMO_MAIL_DOMAIN = "demo.example"
"""The demo people's addresses: ``NAME@demo.example`` (a reserved domain: never sent)."""
SHOWN = 50
"""Most messages the page shows, newest first."""


def give_demo_addresses(uow_factory: Callable[[], UnitOfWork],
                        names: Iterable[str]) -> dict[str, str]:
    """Gives every named person (not automations) the address ``NAME@demo.example``."""
    given: dict[str, str] = {}
    for name in sorted(set(names)):
        try:
            if principals.get_principal(uow_factory(), name).is_automation:
                continue
        except NotFound:
            continue
        address = f"{name}@{DEMO_MAIL_DOMAIN}"
        notifications.set_contact(uow_factory(), name, email=address)
        given[name] = address
    return given


@dataclass(frozen=True)
class MailView:
    """One message in the demo's mail folder, as the page shows it."""

    to: str
    subject: str
    date: str
    text: str


def demo_mail(folder: str, limit: int = SHOWN, *, to: str | None = None) -> list[MailView]:
    """The newest messages the worker wrote to ``folder``, newest first; only those to the
    demo person ``to`` when given."""
    out: list[MailView] = []
    for message in read_emails(Path(folder), limit * 20 if to else limit):
        if to is not None and str(message["To"]) != f"{to}@{DEMO_MAIL_DOMAIN}":
            continue
        if len(out) >= limit:
            break
        body = message.get_body(("plain",))
        out.append(MailView(str(message["To"]), str(message["Subject"]),
                            str(message["Date"]),
                            body.get_content() if body is not None else ""))
    return out
