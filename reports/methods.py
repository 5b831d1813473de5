"""Pure: blocking methods in plain words (DNS, TCP, TLS/SNI filtering, interception, blockpage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The family a method belongs to, as the charts and the summary group them.
FAMILIES: Final[dict[str, str]] = {
    "dns": "DNS",
    "tcp": "TCP/IP",
    "tls": "TLS",
    "http": "HTTP",
}

_WORDS: Final[dict[str, str]] = {
    "dns.nxdomain": "DNS: the resolver says the domain does not exist (NXDOMAIN)",
    "dns.bogon": "DNS: the resolver answers with a bogon (non-routable) address",
    "dns.blockpage": "DNS: the resolver points to a blockpage server",
    "dns.inconsistent": "DNS: answers differ from the control's",
    "dns.timeout": "DNS: the query times out",
    "dns.servfail": "DNS: the resolver fails (SERVFAIL)",
    "tcp.reset": "TCP/IP: connections are reset",
    "tcp.timeout": "TCP/IP: connections time out (IP blocking)",
    "tls.reset": "TLS: the handshake is reset",
    "tls.timeout": "TLS: the handshake times out",
    "tls.mitm": "TLS interception",
    "http.reset": "HTTP: the request is reset",
    "http.timeout": "HTTP: the request times out",
    "http.blockpage": "HTTP blockpage",
    "http.diff": "HTTP: the page differs from the control's",
    "tls.throttled": "TLS/SNI throttling: the page crawls while a neutral SNI at the same address is fast",
    "http.throttled": "HTTP throttling: the page crawls while the control and a neutral URL are fast",
}


def method_family(method: str) -> str:
    """'tls.mitm' -> 'TLS'; unknown prefixes stay as they are."""
    prefix = method.split(".", 1)[0]
    return FAMILIES.get(prefix, prefix.upper())


def describe_method(method: str, *, tls_issuer: str | None = None,
                    fingerprint: Mapping[str, Any] | None = None,
                    sni_passed: bool = False) -> str:
    """One phrase saying how a site is blocked, with the evidence that names the blocker."""
    words = _WORDS.get(method, method)
    if method == "tls.mitm":
        issuer = tls_issuer or (fingerprint or {}).get("name")
        words = f"{words} with a certificate issued by {issuer}" if issuer else words
    elif method.endswith("blockpage") and fingerprint:
        name = fingerprint.get("name") or fingerprint.get("id")
        words = f"{words} ({name}, fingerprint {fingerprint.get('id')})"
    if method in ("tls.reset", "tls.timeout") and sni_passed:
        # The same address answers a neutral SNI: the filter keys on the server name.
        words = f"TLS/SNI filtering: {words.removeprefix('TLS: ')}, while a neutral SNI gets through"
    return words
