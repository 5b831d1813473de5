"""Control step: ask the helper (oohelperd-shaped) what the uncensored side sees for a URL."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http import REQUEST_HEADERS, url_endpoint
from probes.options import ProbeOptions
from probes.tcp import format_endpoint

# A control answer is a few KiB; an endless one must not fill the probe's memory.
MAX_CONTROL_ANSWER_BYTES = 4 * 1024 * 1024


async def read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None once it grows past `limit` (read(n) returns what is buffered,
    so it is read in a loop)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_control_request(url: str, addresses: list[str]) -> dict[str, Any]:
    """The oohelperd request body: the probe's resolved IPs become "ip:port" on the URL's port."""
    _, _, port = url_endpoint(url)
    return {
        "http_request": url,
        "http_request_headers": {key: [value] for key, value in REQUEST_HEADERS.items()},
        "tcp_connect": [format_endpoint(ip, port) for ip in addresses],
        "x_quic_enabled": False,
    }


async def fetch_control(
    session: aiohttp.ClientSession, options: ProbeOptions, url: str, addresses: list[str]
) -> tuple[dict[str, Any], str | None]:
    """POST to options.helper_url; returns (control, control_failure), ({}, None) without a helper."""
    if not options.helper_url:
        return {}, None
    headers = {"Content-Type": "application/json"}
    if options.helper_token:
        headers["Authorization"] = f"Bearer {options.helper_token}"
    body = build_control_request(url, addresses)
    timeout = aiohttp.ClientTimeout(total=options.control_timeout)
    try:
        async with session.post(options.helper_url, json=body, headers=headers, timeout=timeout) as reply:
            payload = await read_capped(reply.content, MAX_CONTROL_ANSWER_BYTES)
            if payload is None or reply.status != 200:
                # The vocabulary is closed; a refusal (401/403/503) is an unusable helper answer.
                return {}, "http_invalid_response"
    except NETWORK_ERRORS as error:
        return {}, classify_failure(error)
    try:
        control = json.loads(payload)
    except ValueError:
        return {}, "http_invalid_response"
    if not isinstance(control, dict) or control_shape_error(control) is not None:
        # The analysis reads these fields as the protocol types them; another shape is no answer.
        return {}, "http_invalid_response"
    return control, None


def control_shape_error(control: dict[str, Any]) -> str | None:
    """The first field of a helper's answer that has not the protocol's type, or None."""
    parts = {key: control.get(key) or {} for key in _MAPS}
    if not all(isinstance(part, dict) for part in parts.values()):
        return next(key for key, part in parts.items() if not isinstance(part, dict))
    dns_part, http_part, extra = parts["dns"], parts["http_request"], parts["x_blockmon"]
    if not _all(dns_part.get("addrs") or [], str, list) or not _optional(dns_part.get("failure"), str):
        return "dns"
    for key in ("tcp_connect", "tls_handshake", "ip_info"):
        if not _all(parts[key].values(), dict) or not all(
            _optional(entry.get(name), int if key == "ip_info" else str)
            for entry in parts[key].values()
            for name in (("asn", "flags") if key == "ip_info" else ("failure",))
        ):
            return key
    headers = http_part.get("headers") or {}
    if not (
        all(_optional(http_part.get(name), str) for name in ("failure", "title"))
        and all(_optional(http_part.get(name), int) for name in ("status_code", "body_length"))
        and isinstance(headers, dict)
        and _all(headers.keys(), str)
        and _all(headers.values(), str)
    ):
        return "http_request"
    chains = extra.get("certificate_chains") or {}
    if not (
        isinstance(chains, dict)
        and all(_all(chain, dict, list) for chain in chains.values())
        and all(_optional(cert.get("issuer"), str) for chain in chains.values() for cert in chain)
        and all(_optional(extra.get(name), str) for name in ("body_sha256", "body_simhash"))
    ):
        return "x_blockmon"
    return None


_MAPS = ("dns", "tcp_connect", "tls_handshake", "http_request", "ip_info", "x_blockmon")


def _optional(value: Any, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _all(values: Any, kind: type, container: type | None = None) -> bool:
    if container is not None and not isinstance(values, container):
        return False
    return all(isinstance(value, kind) and not isinstance(value, bool) for value in values)
