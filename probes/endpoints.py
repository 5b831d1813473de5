"""HOST:PORT text and a URL scheme's default port, read in one place for every caller."""

from __future__ import annotations

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}


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
