"""Where a webhook may be sent: the rules, without any network.

A webhook target is refused when its host is, or resolves to, a loopback, link-local,
private, unspecified, multicast or reserved address, unless the operator allowed that
host or a range holding the address (``RULES_SERVICE_WEBHOOK_ALLOW``). User names and
passwords in a URL are dropped before it is stored or shown.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from rules_service.config import allow_entry_problem

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def strip_credentials(url: str) -> str:
    """The URL without ``user:password@`` (unchanged when it holds none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def internal(address: Address) -> bool:
    """Whether an address is one a webhook may not reach unless allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_link_local or address.is_private
            or address.is_unspecified or address.is_multicast or address.is_reserved
            or not address.is_global)


def literal_address(host: str) -> Address | None:
    """The address a host names literally (``127.0.0.1``, ``[::1]``), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class AllowList:
    """Hosts and address ranges webhooks may reach although they are internal."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> tuple[AllowList, list[str]]:
        """The allow list from host names and CIDR ranges, and what could not be read."""
        hosts: set[str] = set()
        networks: list[Network] = []
        problems = []
        for entry in (e.strip() for e in entries):
            problem = allow_entry_problem(entry) if entry else None
            if problem is not None:
                problems.append(problem)
            elif "/" in entry or literal_address(entry) is not None:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            elif entry:
                hosts.add(entry.rstrip(".").lower())
        return cls(frozenset(hosts), tuple(networks)), problems

    def permits(self, host: str, address: Address) -> bool:
        """Whether ``host`` at ``address`` may be reached."""
        if not internal(address):
            return True
        if host.rstrip(".").lower() in self.hosts:
            return True
        return any(address in network for network in self.networks)

    def refusal(self, host: str, addresses: Iterable[Address]) -> str | None:
        """Why a webhook to ``host`` (at these addresses) is refused, or None."""
        for address in addresses:
            if not self.permits(host, address):
                return (f"{host} is at {address}, a loopback, link-local or private "
                        f"address; webhooks may reach it only when "
                        f"RULES_SERVICE_WEBHOOK_ALLOW names the host or its range")
        return None


def status_class(status: int | None, error: str | None) -> str | None:
    """What a delivery's failure says to someone who is not an admin: the status class of
    an answer (``HTTP 4xx``), or that there was none, never the socket error."""
    if status is not None:
        return f"HTTP {status // 100}xx"
    if error is None:
        return None
    return error if error.startswith(OWN_MESSAGES) else "no answer"


OWN_MESSAGES = ("refused:", "not sent:", "no complete answer", "the subscription")
"""How the errors the service itself writes begin (shown to everyone who may read the
delivery); any other error is the network's and is shown to admins only."""
