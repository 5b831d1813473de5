"""The closed vocabularies of alerts: kinds, incident kinds and states, delivery states."""

from __future__ import annotations

from typing import Final, Literal

AlertKind = Literal[
    "block_confirmed",   # a target is confirmed blocked at a first vantage: incident opened
    "block_escalated",   # more networks (vantages) join an open block incident
    "block_lifted",      # a vantage no longer sees the block (incident closed when the last does)
    "method_changed",    # the blocking method changed at a vantage (e.g. dns -> tls.mitm)
    "outage",            # most targets, controls included, fail at one vantage: one alert
    "outage_ended",
    "probe_silent",      # a probe has not checked in nor submitted beyond its schedule
    "probe_back",
    "vantage_degraded",  # a vantage's rounds cannot be judged (no helper, controls fail, disk)
    "vantage_recovered",
    "intermittent",        # a target is blocked in some attempts and fine in others: one alert
    "intermittent_ended",  # no vantage sees it flapping any more
]
ALERT_KINDS: Final[tuple[str, ...]] = AlertKind.__args__  # type: ignore[attr-defined]

# Alerts the pipeline makes that are not incident changes (never filtered by [alerts] kinds).
TEST_ALERT_KIND: Final = "test"

IncidentKind = Literal["block", "outage", "silence", "degraded", "intermittent"]
IncidentStatus = Literal["open", "closed"]
AlertStatus = Literal["open", "acked"]

# pending: to send at next_attempt_at; sending: claimed until claimed_until; sent; failed:
# given up (permanent error or too old). A digest delivery is sent as part of one message.
DeliveryStatus = Literal["pending", "sending", "sent", "failed"]
DELIVERY_STATUSES: Final[tuple[str, ...]] = DeliveryStatus.__args__  # type: ignore[attr-defined]
