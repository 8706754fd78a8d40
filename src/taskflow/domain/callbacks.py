"""Completion webhooks: which callback URLs a submission may give, and where they may lead.

A submitter must not be able to point taskflow at the internal network (SSRF): a callback's
host must be public, unless the deployment lists it in ``TASKFLOW_CALLBACK_ALLOWED_HOSTS``.
The URL is checked when the task is submitted (IP literals and names that can only be local),
and the addresses its host resolves to are checked again before every delivery (a public name
may be made to resolve to a private address later: DNS rebinding). See decision 23.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The longest callback URL accepted, in characters.
CALLBACK_URL_MAX_LENGTH: Final = 2048

#: Names that only ever mean a host of the local network, whatever DNS says.
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
# Labels of letters, digits, '_' and inner '-', joined by single dots. Each label is matched
# one way only: no nested repetition that could make a hostile name backtrack for ever.
_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME: Final = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
# A last label of digits (or hex) is an IPv4 address in some other spelling (127.1, 0x7f.1,
# 2130706433): resolvers accept them, so they are read as addresses, never as names.
_NUMERIC_LABEL: Final = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def is_public(address: IpAddress) -> bool:
    """Reachable on the public internet: not private, loopback, link-local, shared (CGNAT),
    multicast, reserved or unspecified; an IPv4-mapped IPv6 address is judged by its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class CallbackHosts:
    """The hosts callbacks may reach besides public ones (``TASKFLOW_CALLBACK_ALLOWED_HOSTS``).

    An entry is a host name (``hooks.internal``: that exact name, any port), an IP address
    (``127.0.0.1``, ``::1``) or a network in CIDR form (``10.0.0.0/8``). Ports are not part of
    an entry: a host is private or not whatever the port.
    """

    names: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackHosts:
        """``entries`` as given; ValueError naming the first one that is none of the three."""
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                networks.append(ipaddress.ip_network(bare, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry):
                raise ValueError(
                    f"{raw.strip()!r} is not a host name, an IP address or a CIDR network "
                    "(ports are not part of an entry)"
                )
            names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows_address(self, address: IpAddress) -> bool:
        """A delivery may connect to ``address``: public, or inside a listed network."""
        return is_public(address) or self._listed(address)

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` cannot be a callback URL, or None when it can."""
        if len(url) > CALLBACK_URL_MAX_LENGTH:
            return f"callback_url must be at most {CALLBACK_URL_MAX_LENGTH} characters"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  # raises ValueError for a port out of range
        except ValueError:
            return "callback_url is not a valid URL"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "callback_url must be an absolute http:// or https:// URL"
        if parts.username is not None or parts.password is not None:
            return "callback_url must not carry a user name or password"
        return self.host_problem(parts.hostname)

    def host_problem(self, host: str) -> str | None:
        """Why a callback may not go to ``host`` (as ``urlsplit`` gives it), or None."""
        name = host.lower().rstrip(".")
        if name in self.names:
            return None
        address = parse_address(name)
        if address is not None:
            if self.allows_address(address):
                return None
            return (
                f"callback_url: {host} is not a public address; list it in "
                "TASKFLOW_CALLBACK_ALLOWED_HOSTS to allow it"
            )
        if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]) or not _HOST_NAME.fullmatch(name):
            return f"callback_url: {host[:100]!r} is not a valid host name or address"
        if name == "localhost" or name.endswith(_LOCAL_SUFFIXES) or "." not in name:
            return (
                f"callback_url: {host} names a host of the local network; list it in "
                "TASKFLOW_CALLBACK_ALLOWED_HOSTS to allow it"
            )
        return None

    def delivery_problem(self, host: str, addresses: Iterable[IpAddress]) -> str | None:
        """Why a delivery may not connect to ``host`` now that it resolves to ``addresses``
        (every one must be allowed), or None. A listed name may resolve to anything."""
        if host.lower().rstrip(".") in self.names:
            return None
        refused = [str(a) for a in addresses if not self.allows_address(a)]
        if refused:
            return (
                f"{host} resolves to {refused[0]}, which is not a public address and not in "
                "TASKFLOW_CALLBACK_ALLOWED_HOSTS"
            )
        return None

    def _listed(self, address: IpAddress) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(
            candidate in network
            for network in self.networks
            for candidate in (address, mapped)
            if candidate is not None and candidate.version == network.version
        )


def callback_url_problem(url: str, hosts: CallbackHosts | None) -> str | None:
    """Why a submission may not carry ``url`` as its ``callback_url``, or None when it may;
    ``hosts`` None: webhooks are off (no TASKFLOW_WEBHOOK_SECRET)."""
    if hosts is None:
        return "callback_url needs TASKFLOW_WEBHOOK_SECRET, which this deployment does not set"
    return hosts.url_problem(url)


def parse_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # a zone (fe80::1%eth0) is no escape
    except ValueError:
        return None
