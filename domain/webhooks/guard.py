"""Where a webhook may send: the URL rules and the server-side request forgery guard.

A hook's URL is http or https, with a host, without credentials. Before every request the
host is resolved and each of its addresses checked: private, loopback, link-local,
unspecified, multicast and reserved addresses (and IPv4 ones written as IPv6) are refused
unless WEBHOOK_ALLOW_PRIVATE is set. The request then goes to the address checked, not to
the name again: a name that answers differently a moment later (DNS rebinding) cannot
turn it to another host. The same checks refuse such a URL when a hook is created.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2_048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
KINDS = (  # the first that applies names a refused address
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)


class Refused(Exception):
    """A URL a webhook may not have, or may not be sent to now; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart: what a request to it is made of."""

    scheme: str
    host: str  # the name or address as written (without brackets)
    port: int
    netloc: str  # for the Host header: as written, port included when given
    path: str  # path and query

    def url_to(self, address: Address) -> str:
        """The URL of the same resource on `address`, checked, rather than on the name."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def parse(url: str) -> Target:
    """The URL's parts; Refused, with the reason, when a webhook may not have it."""
    if len(url) > MAX_URL:
        raise Refused(f"The URL has at most {MAX_URL:,} characters.")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused("The URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"The URL is malformed: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("The URL must start with http:// or https://.")
    host = parts.hostname
    if not host:
        raise Refused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise Refused("The URL may not contain a user name or password: use the secret.")
    if parts.fragment:
        raise Refused("The URL may not have a fragment (#…): it is never sent.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if port == 0:
        raise Refused("The URL's port must be 1 to 65535.")
    default = 443 if scheme == "https" else 80
    return Target(scheme, host, port or default, parts.netloc, path)


def refusal(address: Address) -> str | None:
    """Why a webhook may not reach `address` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            found = refusal(embedded)
            return f"{found} (as IPv6)" if found else None
    for test, kind in KINDS:
        if getattr(address, test):
            return f"{kind} address"
    if not address.is_global:
        return "not a public address"
    return None


async def resolve(target: Target, *, allow_private: bool) -> list[Address]:
    """The addresses of the target's host, each checked; Refused when the name does not
    resolve or any address is one a webhook may not reach."""
    addresses = await _addresses(target.host, target.port)
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                shown = "" if str(address) == target.host else f" resolves to {address}, which"
                raise Refused(
                    f"The host {target.host}{shown} is {why}: webhooks go to public "
                    "addresses only (WEBHOOK_ALLOW_PRIVATE=true allows others)."
                )
    return addresses


async def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"The host {host} does not resolve ({exc}).") from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"The host {host} does not resolve.")
    return addresses
