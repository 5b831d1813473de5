"""Whether an IP address is a bogon: never a real public server's address (RFC 6890 and kin)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Special-purpose ranges a censor's resolver answers with (127.0.0.1, 10.x) and that a control
# helper must never be steered into. Sources: RFC 6890 registries, RFC 6598 (CGNAT).
_BOGON_RANGES: tuple[str, ...] = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    # IPv4-compatible (deprecated, RFC 4291 2.5.5.1): ::127.0.0.1 must not pass as public.
    "::/96",
    "::ffff:0:0/96",
    # NAT64 local-use prefix (RFC 8215): operators embed IPv4 at any of RFC 6052's lengths, so no
    # one place holds the address a gateway would reach; all of it is refused.
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
)

BOGON_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(r) for r in _BOGON_RANGES)

# Prefixes a translator maps onto the IPv4 address in their last 32 bits: the NAT64 well-known
# prefix 64:ff9b::/96 (RFC 6052) and IPv4-translated ::ffff:0:0:0/96 (RFC 2765, SIIT). Behind a
# NAT64 gateway 64:ff9b::7f00:1 is 127.0.0.1, so each is judged as the address it carries; not
# refused whole, because a DNS64 resolver answers public IPv4-only sites in 64:ff9b::/96.
_IPV4_CARRYING: tuple[ipaddress.IPv6Network, ...] = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)


# A probe meets the same few addresses in every step and every round, and parsing one costs
# ~5 µs (a dozen Python calls); addresses are immutable, so the parsed ones are shared.
@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """The IPv4 or IPv6 address `text` writes (no brackets, no zone), or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ip_address(text: str) -> bool:
    """Whether `text` is an IPv4 or IPv6 address (no brackets)."""
    if ":" not in text and not text[-1:].isdigit():
        # No IPv6 without a colon, no IPv4 ending in a letter: host names are not parsed at all.
        return False
    return parse_ip(text) is not None


def parse_networks(ranges: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """CIDR strings (or networks) -> networks; a bad one raises ValueError naming it."""
    networks: list[IPNetwork] = []
    for item in ranges:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            raise ValueError(f"not a CIDR range: {item!r} ({error})") from None
    return tuple(networks)


@lru_cache(maxsize=4096)
def _is_special(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _is_special(address.ipv4_mapped)
        if any(address in prefix for prefix in _IPV4_CARRYING):
            return _is_special(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return any(address in network for network in BOGON_NETWORKS)


def is_bogon(ip: str, public_networks: Iterable[str | IPNetwork] = ()) -> bool:
    """True for loopback, private, CGNAT, link-local, multicast, reserved and documentation
    addresses, unless the address lies in one of `public_networks` (the lab's documented setting,
    which makes part of 127.0.0.0/8 count as the public internet). Not an IP at all -> ValueError.
    """
    if isinstance(public_networks, tuple):
        # The probe and the helper pass the same parsed tuple for every address: remembered.
        try:
            return _cached_is_bogon(ip, public_networks)
        except TypeError:
            pass  # something unhashable in the tuple: judged (and refused) below
    return _is_bogon(ip, public_networks)


@lru_cache(maxsize=4096)
def _cached_is_bogon(ip: str, public_networks: tuple[str | IPNetwork, ...]) -> bool:
    return _is_bogon(ip, public_networks)


def _is_bogon(ip: str, public_networks: Iterable[str | IPNetwork]) -> bool:
    text = ip.strip("[]").split("%")[0]
    address = parse_ip(text)
    if address is None:
        address = ipaddress.ip_address(text)  # raises the ValueError that names the text
    for network in parse_networks(public_networks):
        if address.version == network.version and address in network:
            return False
    return _is_special(address)
