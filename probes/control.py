"""Control step: ask the helper (oohelperd-shaped) what the uncensored side sees for a URL."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http import REQUEST_HEADERS, url_endpoint
from probes.options import ProbeOptions
from probes.tcp import format_endpoint


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
            payload = await reply.read()
            if reply.status != 200:
                # The vocabulary is closed; a refusal (401/403/503) is an unusable helper answer.
                return {}, "http_invalid_response"
    except NETWORK_ERRORS as error:
        return {}, classify_failure(error)
    try:
        control = json.loads(payload)
    except ValueError:
        return {}, "http_invalid_response"
    if not isinstance(control, dict):
        return {}, "http_invalid_response"
    return control, None
