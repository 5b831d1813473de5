"""Read the hostname a connection asks for from its first bytes: TLS ClientHello SNI or HTTP Host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Past this many bytes without a complete ClientHello or header block, stop waiting and decide.
SNIFF_LIMIT = 16 * 1024

SniffStatus = Literal["complete", "incomplete", "malformed"]


@dataclass(frozen=True, slots=True)
class Sniffed:
    status: SniffStatus
    hostname: str | None = None


INCOMPLETE = Sniffed("incomplete")
MALFORMED = Sniffed("malformed")


def sniff_tls_server_name(data: bytes) -> Sniffed:
    """Parse the SNI out of a ClientHello that may span several TLS records."""
    handshake = bytearray()
    offset = 0
    while True:
        if len(data) < offset + 5:
            return INCOMPLETE if len(data) < SNIFF_LIMIT else MALFORMED
        if data[offset] != 0x16:  # handshake record
            return MALFORMED
        record_length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        fragment = data[offset + 5 : offset + 5 + record_length]
        handshake += fragment
        if len(fragment) < record_length:
            return INCOMPLETE if len(data) < SNIFF_LIMIT else MALFORMED
        offset += 5 + record_length
        if len(handshake) >= 4:
            if handshake[0] != 0x01:  # client_hello
                return MALFORMED
            if len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
                break
    try:
        return Sniffed("complete", _server_name_from_client_hello(bytes(handshake[4:])))
    except (IndexError, ValueError):
        return MALFORMED


def _server_name_from_client_hello(body: bytes) -> str | None:
    position = 2 + 32  # client_version, random
    position += 1 + body[position]  # session_id
    position += 2 + int.from_bytes(body[position : position + 2], "big")  # cipher_suites
    position += 1 + body[position]  # compression_methods
    if position >= len(body):
        return None  # no extensions at all
    extensions_end = position + 2 + int.from_bytes(body[position : position + 2], "big")
    position += 2
    while position + 4 <= extensions_end:
        extension_type = int.from_bytes(body[position : position + 2], "big")
        extension_length = int.from_bytes(body[position + 2 : position + 4], "big")
        position += 4
        if extension_type == 0:  # server_name (RFC 6066 section 3)
            names = body[position : position + extension_length]
            cursor = 2
            while cursor + 3 <= len(names):
                name_type = names[cursor]
                name_length = int.from_bytes(names[cursor + 1 : cursor + 3], "big")
                name = names[cursor + 3 : cursor + 3 + name_length]
                if name_type == 0:
                    return name.decode("ascii").rstrip(".").lower()
                cursor += 3 + name_length
            return None
        position += extension_length
    return None


def sniff_http_host(data: bytes) -> Sniffed:
    """Parse the Host header out of an HTTP/1.x request head (port stripped, lower-cased)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return INCOMPLETE if len(data) < SNIFF_LIMIT else MALFORMED
    lines = data[:end].split(b"\r\n")
    if b" HTTP/1." not in lines[0]:
        return MALFORMED
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("latin-1").lower()
            if host.startswith("["):
                return Sniffed("complete", host.partition("]")[0] + "]")
            return Sniffed("complete", host.partition(":")[0].rstrip(".") or None)
    return Sniffed("complete", None)
