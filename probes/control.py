"""Control step: ask the helper (oohelperd-shaped) what the uncensored side sees for a URL."""

from __future__ import annotations

import aiohttp

from probes.control_protocol import (
    ControlAnswer,
    ControlAnswerError,
    build_control_request,
    parse_control_answer,
)
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http import REQUEST_HEADERS, read_capped
from probes.options import ProbeOptions

# A control answer is a few KiB; an endless one must not fill the probe's memory.
MAX_CONTROL_ANSWER_BYTES = 4 * 1024 * 1024


async def fetch_control(
    session: aiohttp.ClientSession, options: ProbeOptions, url: str, addresses: list[str]
) -> tuple[ControlAnswer, str | None]:
    """POST to options.helper_url; returns (control, control_failure), ({}, None) without a helper."""
    if not options.helper_url:
        return {}, None
    headers = {"Content-Type": "application/json"}
    if options.helper_token:
        headers["Authorization"] = f"Bearer {options.helper_token}"
    body = build_control_request(url, addresses, REQUEST_HEADERS)
    timeout = aiohttp.ClientTimeout(total=options.control_timeout)
    try:
        async with session.post(options.helper_url, json=body, headers=headers, timeout=timeout) as reply:
            payload, oversized = await read_capped(reply.content, MAX_CONTROL_ANSWER_BYTES)
            if oversized or reply.status != 200:
                # The vocabulary is closed; a refusal (401/403/503) is an unusable helper answer.
                return {}, "http_invalid_response"
    except NETWORK_ERRORS as error:
        return {}, classify_failure(error)
    try:
        return parse_control_answer(payload), None
    except ControlAnswerError:
        return {}, "http_invalid_response"
