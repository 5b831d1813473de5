"""HOST:PORT text, a URL scheme's default port and a URL's request target, in one place for every caller."""

from __future__ import annotations

import re
import string
from urllib.parse import quote, urlsplit

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
_PLAIN_TARGET = re.compile(r"[\x21-\x7e]+")


def split_host_port(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' -> (host without brackets, port); ValueError otherwise.

    Port 0 (any free port) is only meaningful for a listener that reports the port it got.
    """
    host, separator, port_text = text.rpartition(":")
    host = host.strip("[]")
    lowest = 0 if allow_port_zero else 1
    if not separator or not host or not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port_text)


def request_target(url: str) -> str:
    """The request line's target of `url`: its path and query, a non-ASCII one %-escaped as UTF-8
    (as a browser sends a Cyrillic article's path)."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if not _PLAIN_TARGET.fullmatch(target):
        target = quote(target, safe=string.punctuation)
    return target
