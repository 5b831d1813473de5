"""The generic webhook channel: JSON POST, optionally signed with HMAC-SHA256 over the body."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from monitor.alerts.channels.base import TransportError, answer_wait_for, http_status_error
from probes import __version__
from probes.http import read_capped

SIGNATURE_HEADER = "X-Blockmon-Signature"
DELIVERY_HEADER = "X-Blockmon-Delivery"


def sign_body(body: bytes, secret: str) -> str:
    """The signature header value: "sha256=" + hex HMAC-SHA256 of the exact body bytes."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, secret: str, header: str | None) -> bool:
    """For receivers (and tests): constant-time check of the signature header."""
    return header is not None and hmac.compare_digest(sign_body(body, secret), header)


RESPONSE_READ_LIMIT = 4096


async def post_json(channel: str, url: str, document: Mapping[str, Any], *, timeout: float,
                    headers: Mapping[str, str] | None = None,
                    secret: str | None = None) -> None:
    """POST `document`; any 2xx is accepted, anything else becomes a TransportError."""
    body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    sent_headers = {"Content-Type": "application/json",
                    "User-Agent": f"blockmon/{__version__}", **(headers or {})}
    if secret:
        sent_headers[SIGNATURE_HEADER] = sign_body(body, secret)
    # Connecting may take `timeout`; once the request is sent the answer is waited for longer
    # (answer_wait_for): giving up on a slow receiver that got the alert would send it twice.
    limits = aiohttp.ClientTimeout(total=answer_wait_for(timeout), connect=timeout,
                                   sock_connect=timeout)
    try:
        async with aiohttp.ClientSession(timeout=limits) as session:
            async with session.post(url, data=body, headers=sent_headers,
                                    allow_redirects=False) as response:
                # Only the start of an answer is kept for the error text: a receiver must
                # not be able to make the sender buffer an endless body.
                head, _ = await read_capped(response.content, RESPONSE_READ_LIMIT)
                text = head.decode("utf-8", errors="replace")
                if not 200 <= response.status < 300:
                    raise http_status_error(channel, response.status, text)
    except TransportError:
        raise
    except aiohttp.InvalidURL as error:
        raise TransportError(f"{channel}: invalid URL {error}", permanent=True) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise TransportError(f"{channel}: {type(error).__name__}: {error}".rstrip(": ")) from None


class WebhookChannel:
    """Sends the alert payload itself (docs/alerts.md) to any HTTP endpoint."""

    def __init__(self, url: str, *, secret: str | None = None, timeout: float = 15.0,
                 name: str = "webhook") -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def _headers(self, delivery_id: int | None) -> dict[str, str]:
        return {DELIVERY_HEADER: str(delivery_id)} if delivery_id is not None else {}

    async def send(self, payload: Mapping[str, Any], *, delivery_id: int | None) -> None:
        await post_json(self.name, self.url, payload, timeout=self.timeout,
                        headers=self._headers(delivery_id), secret=self.secret)

    async def send_digest(self, digest: Mapping[str, Any], *, delivery_id: int | None) -> None:
        await post_json(self.name, self.url, digest, timeout=self.timeout,
                        headers=self._headers(delivery_id), secret=self.secret)
