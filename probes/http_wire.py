"""HTTP/1.1 bytes for the common case, read and written without h11's per-event machinery.

h11 is the reference: it validates every message and knows every framing. Its state machine,
though, costs about a tenth of a measurement's CPU. This module accepts only a strict subset of
what h11 accepts and reads it exactly as h11 would (the same regular grammar, RFC 9112); for
anything else (folded or unusual lines, 1xx, chunked, two Content-Lengths, other versions) it
answers None and the caller hands the bytes to h11 (probes/http_stream.py). Pure functions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# The grammar h11 validates with (h11/_abnf.py), restricted where noted.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_HEADER_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*")
# Only HTTP/1.0 and 1.1, only final (>= 200) responses.
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([2-9][0-9]{2})(?: (?:[ \t]|[^\x00\s])*)?")
_REQUEST_TARGET = re.compile(rb"[\x21-\x7e]+")
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
_TOKEN_RE = re.compile(_TOKEN)

HEAD_END = b"\r\n\r\n"
# A head not complete within this many bytes goes to h11 (which allows up to 256 KiB).
FAST_HEAD_LIMIT = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    # (name as sent, value without surrounding whitespace), as h11's raw_items() gives them.
    headers: list[tuple[bytes, bytes]]
    # Bytes of body to read; None: read until the server closes.
    content_length: int | None
    # HTTP/1.1 without "Connection: close": the connection may serve the next request.
    keep_alive: bool


def parse_response_head(data: bytes | bytearray, end: int) -> ResponseHead | None:
    """The response head in data[:end] (end: where HEAD_END starts), or None for h11 to read.

    The response answers a GET or POST, so 204 and 304 have no body whatever they say.
    """
    lines = bytes(data[:end]).split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            return None  # a bare CR or LF: h11 splits lines its own way
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        return None
    headers: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    close = status_line.group(1) == b"0"
    for line in lines[1:]:
        field = _HEADER_FIELD.fullmatch(line)
        if field is None:
            return None  # an obs-fold continuation, or a line h11 refuses
        name, value = field.group(1), field.group(2)
        lowered = name.lower()
        if lowered == b"content-length":
            if content_length is not None or _CONTENT_LENGTH.fullmatch(value) is None:
                return None
            content_length = int(value)
        elif lowered == b"transfer-encoding":
            return None
        elif lowered == b"connection" and b"close" in (token.strip().lower() for token in value.split(b",")):
            close = True
        headers.append((name, value))
    status = int(status_line.group(2))
    if status in _NO_BODY_STATUSES:
        content_length = 0
    # Read until close: the connection ends with the body, as h11's framing says.
    keep_alive = not close and content_length is not None
    return ResponseHead(status, headers, content_length, keep_alive)


def encode_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes | None:
    """The request's bytes exactly as h11 writes them (Host first), or None where h11 must
    (it would refuse them, or decide framing itself).

    `headers` must already carry Host (and Content-Length when there is a body), as h11 asks.
    """
    try:
        request_line = f"{method} {target} HTTP/1.1".encode("ascii")
        fields = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
    except UnicodeEncodeError:
        return None
    if _TOKEN_RE.fullmatch(method.encode("ascii")) is None or _REQUEST_TARGET.fullmatch(target.encode("ascii")) is None:
        return None
    hosts: list[bytes] = []
    others: list[bytes] = []
    for name, value in fields:
        if not _is_plain_field(name, value):
            return None
        lowered = name.lower()
        if lowered in (b"transfer-encoding", b"connection"):
            return None  # framing and keep-alive h11 decides about
        (hosts if lowered == b"host" else others).append(name + b": " + value)
    if len(hosts) != 1:
        return None
    return b"\r\n".join([request_line, *hosts, *others]) + HEAD_END + body


@functools.lru_cache(maxsize=1024)
def _is_plain_field(name: bytes, value: bytes) -> bool:
    # Requests repeat the same few headers (User-Agent, Accept, ...): each is checked once.
    field = _HEADER_FIELD.fullmatch(name + b": " + value)
    return field is not None and field.group(2) == value
