"""Where a webhook may go (server-side request forgery). Pure.

A URL is checked for its form (`url_problem`), then every address its host resolves to
(`address_problem`); the delivery connects to one of those very addresses (`pinned`), so
a host that resolves elsewhere a moment later (DNS rebinding) changes nothing.

- Link-local addresses (169.254.0.0/16, fe80::/10: where clouds serve instance metadata
  and credentials) are never reached, whatever the city pack says.
- Loopback, private and other non-global unicast addresses are reached only where the
  pack allows private addresses (`routing.yaml` `webhooks.allow_private_addresses`).
- Multicast, unspecified and reserved addresses are never reached.
- An IPv6 address that carries an IPv4 one is judged by what it carries: IPv4-mapped
  (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) are
  mere spellings of it; 6to4 (2002::/16), Teredo (2001::/32) and ISATAP reach it through a
  relay, so the IPv6 address is judged too. Other IPv4 spellings (2130706433, 0x7f.1,
  0177.0.0.1) never get here as such: the resolver turns them into the address itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host": Linux connects it to loopback
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
ISATAP = (0x00005EFE, 0x02005EFE)  # the interface id's upper half: …:0:5efe:a.b.c.d


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL's form, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
        (parts.hostname or "").encode("idna")  # a host no resolver could take
    except (ValueError, UnicodeError) as exc:
        return f"the URL does not parse ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    return None


def carried(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address `ip` carries, if any, and whether `ip` is a mere spelling of it
    (else a relay's address, to be judged as well)."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, True
    if any(ip in net for net in NAT64):
        return low, True
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are IPv6's own
        return low, True
    if ip.sixtofour is not None:
        return ip.sixtofour, False
    if ip.teredo is not None:
        return ip.teredo[1], False  # the client's address (the server is the relay)
    if (int(ip) >> 32) & 0xFFFFFFFF in ISATAP:
        return low, False
    return None, False


def _judged(ip: Address, allow_private: bool) -> str | None:
    """Why one address may not be reached, or None."""
    if ip.is_multicast or ip.is_unspecified or ip in THIS_NETWORK:
        return f"{ip} is not a unicast address"
    if ip.is_reserved and not ip.is_loopback:
        return f"{ip} is not a unicast address"
    if any(ip in net for net in LINK_LOCAL):
        return (
            f"{ip} is link-local (169.254.0.0/16, fe80::/10: cloud metadata), never reached, "
            "whatever allow_private_addresses says"
        )
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    if ip.is_loopback or ip.is_private or site_local or not ip.is_global:
        return None if allow_private else f"{ip} is a private, loopback or non-global address"
    return None


def address_problem(addresses: Sequence[str], allow_private: bool) -> str | None:
    """Why the resolved `addresses` of a webhook host may not be reached, or None: every one
    of them must pass, as the delivery may connect to any."""
    if not addresses:
        return "the host does not resolve"
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])  # a zone id is no address
        except ValueError:
            return f"{text} is not an IP address"
        judged: list[Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            inner, spelling = carried(ip)
            if inner is not None:
                judged = [inner] if spelling else [inner, ip]
        for one in judged:
            if problem := _judged(one, allow_private):
                return problem if one is ip else f"{ip} carries an IPv4 address: {problem}"
    return None


@dataclass(frozen=True)
class Pinned:
    """A request to a webhook URL sent to one checked address of its host: `url` names the
    address, `host` is the Host header and `sni` the TLS server name (and the name the
    certificate is checked against) the URL's host would have had."""

    url: str
    host: str | None
    sni: str | None


def pinned(url: str, address: str) -> Pinned:
    """`url` sent to `address` (one its host resolved to, and was checked)."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    if _is_address(hostname):
        return Pinned(url, None, None)  # the URL names its address already
    name = hostname.encode("idna").decode("ascii")
    port = f":{parts.port}" if parts.port is not None else ""
    literal = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, literal + port, parts.path, parts.query, ""))
    return Pinned(target, name + port, name if parts.scheme == "https" else None)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
