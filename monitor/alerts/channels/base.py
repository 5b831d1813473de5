"""What every channel offers, and the one error a channel raises (as healthchecks' transports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class TransportError(Exception):
    """A delivery did not go through. `permanent` ones (bad URL, refused address) are not
    retried; the others are, with backoff. The message is saved as the delivery's last_error."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Channel(Protocol):
    name: str

    async def send(self, payload: Mapping[str, Any], *, delivery_id: int | None) -> None:
        """One alert (payload of docs/alerts.md, with alert_id)."""
        ...

    async def send_digest(self, digest: Mapping[str, Any], *, delivery_id: int | None) -> None:
        """Many alerts as one message (messages.build_digest)."""
        ...


def answer_wait_for(send_timeout: float) -> float:
    """Seconds a receiver that took a whole request may take to answer it: three send timeouts
    and 20 s more. A late answer still counts as delivered; only one that never comes within
    this makes the delivery retried (receivers drop a repeat by its alert_id, docs/alerts.md)."""
    return send_timeout * 3 + 20


def http_status_error(channel: str, status: int, body: str) -> TransportError:
    """4xx other than 408/429 will not get better by retrying; 5xx, 408 and 429 may."""
    permanent = 400 <= status < 500 and status not in (408, 429)
    return TransportError(f"{channel}: HTTP {status} {body[:200]!r}", permanent=permanent)
