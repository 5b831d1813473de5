"""Control step: ask the helper (oohelperd-shaped) what the uncensored side sees for a URL."""

from __future__ import annotations

from probes.control_client import ControlClient
from probes.control_protocol import (
    ControlAnswer,
    ControlAnswerError,
    encode_control_request,
    parse_control_answer,
)
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http import REQUEST_HEADERS
from probes.options import ProbeOptions

# A control answer is a few KiB; an endless one must not fill the probe's memory.
MAX_CONTROL_ANSWER_BYTES = 4 * 1024 * 1024


async def fetch_control(
    session: ControlClient, options: ProbeOptions, url: str, addresses: list[str]
) -> tuple[ControlAnswer, str | None]:
    """POST to options.helper_url; returns (control, control_failure), ({}, None) without a helper."""
    if not options.helper_url:
        return {}, None
    headers = {"Content-Type": "application/json"}
    if options.helper_token:
        headers["Authorization"] = f"Bearer {options.helper_token}"
    body = encode_control_request(url, addresses, REQUEST_HEADERS)
    try:
        reply = await session.post(options.helper_url, body, headers, timeout=options.control_timeout,
                                   limit=MAX_CONTROL_ANSWER_BYTES)
    except NETWORK_ERRORS as error:
        return {}, classify_failure(error)
    if reply.oversized or reply.status != 200:
        # The vocabulary is closed; a refusal (401/403/503) is an unusable helper answer.
        return {}, "http_invalid_response"
    payload = reply.body
    try:
        return parse_control_answer(payload), None
    except ControlAnswerError:
        return {}, "http_invalid_response"
