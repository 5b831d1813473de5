"""OONI's binary-safe values ({"format": "base64", "data": ...}) read as text; pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


def is_binary_value(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("format") == "base64"


def binary_bytes(value: Any) -> bytes | None:
    """The bytes of OONI's base64 value; None for anything else or undecodable data."""
    if not is_binary_value(value):
        return None
    try:
        return base64.b64decode(str(value.get("data") or ""), validate=False)
    except (binascii.Error, ValueError):
        return None


def as_text(value: Any) -> str | None:
    """A body or header value as text: strings as they are, base64 decoded (UTF-8, else Latin-1:
    a blockpage in a legacy charset still shows its markers), anything else None."""
    if isinstance(value, str):
        return value
    raw = binary_bytes(value)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def readable_headers(headers: Any) -> dict[str, str]:
    """Header map with every value as text (old OONI versions store some as base64)."""
    if not isinstance(headers, Mapping):
        return {}
    readable = {}
    for name, value in headers.items():
        text = as_text(value)
        if text is None and isinstance(value, list):
            text = ", ".join(t for t in (as_text(v) for v in value) if t is not None)
        readable[str(name)] = text if text is not None else str(value)
    return readable


def readable_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an HTTP response whose body and headers are text, for any OONI version."""
    readable = dict(response)
    body = response.get("body")
    if body is not None and not isinstance(body, str):
        raw = binary_bytes(body)
        readable["body"] = as_text(body) or ""
        if not isinstance(response.get("body_length"), int) and raw is not None:
            readable["body_length"] = len(raw)
    readable["headers"] = readable_headers(response.get("headers"))
    if "headers_list" in response and isinstance(response["headers_list"], list):
        readable["headers_list"] = [
            [str(as_text(pair[0]) or ""), str(as_text(pair[1]) or "")]
            for pair in response["headers_list"]
            if isinstance(pair, list | tuple) and len(pair) == 2
        ]
    return readable
