"""The collector's HTTP endpoints under /api/v1/: register, check-in, measurements, health."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from monitor.collector.auth import bearer_token
from monitor.collector.backend import DatabaseThreads
from monitor.collector.intake import save_and_decide
from monitor.collector.probe_network import fill_probe_network
from monitor.collector.registry import ProbeRecord, Registry, TargetListVersion, format_time
from monitor.collector.validation import (
    BatchLimits,
    RegisteredProbe,
    Rejection,
    check_batch,
    check_registration,
    check_stored_sizes,
    parse_json_object,
    parse_ooni_time,
)
from monitor.store import Store
from monitor.store.rows import measurement_row
from probes.asn import AsnDatabase
from probes.http import read_capped

# How many anomalous results in a row confirm a block ([schedule] confirm_retests + 1).
CONFIRMATIONS_KEY = web.AppKey("confirmations_needed", int)

log = logging.getLogger(__name__)

API = "/api/v1"
REGISTER_BODY_LIMIT = 16 * 1024
CHECK_IN_BODY_LIMIT = 16 * 1024
# Seconds a whole request body may take to arrive (8 MiB at 300 kB/s).
BODY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class UploadAdvice:
    """What the collector tells probes about uploading, at check-in."""

    batch: int = 100
    interval_seconds: int = 300


# Typed keys of what build_app puts on the application for the handlers.
DATABASE_KEY = web.AppKey("database", DatabaseThreads)
LIMITS_KEY = web.AppKey("limits", BatchLimits)
ADVICE_KEY = web.AppKey("upload_advice", UploadAdvice)
ASN_DATABASE_KEY = web.AppKey("asn_database", AsnDatabase)  # set only when configured


def refuse(rejection: Rejection) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="blockmon"'} if rejection.status == 401 else None
    return web.json_response(rejection.as_json(), status=rejection.status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes | Rejection:
    """Read at most `limit` bytes; a larger body is refused before it is all in memory."""
    too_large = Rejection(413, f"body is larger than {limit} bytes", "body")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    try:
        # A client trickling its body must not hold a connection and a handler for ever.
        body, oversized = await asyncio.wait_for(read_capped(request.content, limit),
                                                 BODY_SECONDS)
    except TimeoutError:
        return Rejection(408, f"body not received within {BODY_SECONDS:g} s", "body")
    return too_large if oversized else body


async def read_json(request: web.Request, limit: int, *,
                    no_control: bool = False) -> dict[str, Any] | Rejection:
    body = await read_body(request, limit)
    if isinstance(body, Rejection):
        return body
    return parse_json_object(body, no_control=no_control)


async def authenticated_probe(request: web.Request) -> ProbeRecord | Rejection:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return Rejection(401, "missing or malformed 'Authorization: Bearer <token>' header", "Authorization")
    database: DatabaseThreads = request.app[DATABASE_KEY]
    status, probe = await database.run(lambda _store, registry: registry.authenticate(token))
    if status == "unknown" or probe is None:
        return Rejection(401, "unknown token: register this probe first", "Authorization")
    if status == "revoked":
        return Rejection(403, f"probe {probe.probe_id!r} was revoked by the operator", "Authorization")
    return probe


async def register(request: web.Request) -> web.Response:
    body = await read_json(request, REGISTER_BODY_LIMIT, no_control=True)
    if isinstance(body, Rejection):
        return refuse(body)
    checked = check_registration(body)
    if isinstance(checked, Rejection):
        return refuse(checked)
    # The address only stands in for an ASN/CC the probe did not give; it is not kept.
    checked = fill_probe_network(checked, request.remote, request.app.get(ASN_DATABASE_KEY))
    database: DatabaseThreads = request.app[DATABASE_KEY]
    now = datetime.now(UTC)
    outcome = await database.run(
        lambda _store, registry: registry.register_probe(checked, now=now)
    )
    if outcome.outcome == "bad_secret":
        return refuse(
            Rejection(403, "enrolment secret is unknown, expired or used up", "enrolment_secret")
        )
    if outcome.outcome == "vantage_mismatch":
        return refuse(
            Rejection(403, "this enrolment secret was issued for another vantage_id", "vantage_id")
        )
    if outcome.outcome == "vantage_revoked":
        return refuse(
            Rejection(
                403, "vantage_id was revoked; enrol it again with a secret minted after the "
                "revocation", "vantage_id"
            )
        )
    if outcome.outcome == "vantage_taken":
        return refuse(
            Rejection(
                409, "vantage_id is enrolled already; the operator must revoke it first", "vantage_id"
            )
        )
    log.info("probe %s registered", outcome.probe_id)
    return web.json_response(
        {"probe_id": outcome.probe_id, "vantage_id": outcome.probe_id, "token": outcome.token},
        status=201,
    )


async def check_in(request: web.Request) -> web.Response:
    probe = await authenticated_probe(request)
    if isinstance(probe, Rejection):
        return refuse(probe)
    body = await read_json(request, CHECK_IN_BODY_LIMIT, no_control=True)
    if isinstance(body, Rejection):
        return refuse(body)
    known_version = body.get("targets_version")
    if known_version is not None and (isinstance(known_version, bool) or not isinstance(known_version, int)):
        return refuse(Rejection(400, "must be an integer or null", "targets_version"))
    software_version = body.get("software_version")
    if software_version is not None and (
        not isinstance(software_version, str) or len(software_version) > 64
    ):
        return refuse(Rejection(400, "must be a string of at most 64 characters", "software_version"))
    now = datetime.now(UTC)

    def work(_store: Store, registry: Registry) -> TargetListVersion | None:
        registry.record_check_in(probe.probe_id, software_version, now=now)
        return registry.latest_target_list()

    database: DatabaseThreads = request.app[DATABASE_KEY]
    latest = await database.run(work)
    advice: UploadAdvice = request.app[ADVICE_KEY]
    targets = None
    if latest is not None and latest.version != known_version:
        targets = {
            "version": latest.version,
            "published_at": latest.published_at,
            "format": latest.format,
            "content": latest.content,
            "schedule": latest.schedule,
        }
    return web.json_response(
        {
            "probe_id": probe.probe_id,
            "server_time": format_time(now),
            "targets_version": latest.version if latest else None,
            "targets": targets,
            "upload": {"batch": advice.batch, "interval_seconds": advice.interval_seconds},
        }
    )


async def submit_measurements(request: web.Request) -> web.Response:
    probe = await authenticated_probe(request)
    if isinstance(probe, Rejection):
        return refuse(probe)
    limits: BatchLimits = request.app[LIMITS_KEY]
    body = await read_json(request, limits.max_body_bytes)
    if isinstance(body, Rejection):
        return refuse(body)
    registered = RegisteredProbe(probe.probe_id, probe.probe_cc, probe.probe_asn,
                                 probe.probe_network_name)
    now = datetime.now(UTC)
    checked = check_batch(body, probe=registered, now=now, limits=limits,
                          clock_offset=probe_clock_offset(request, now))
    if isinstance(checked, Rejection):
        return refuse(checked)
    database: DatabaseThreads = request.app[DATABASE_KEY]
    rows = [storable_row(measurement) for measurement in checked]
    oversized = check_stored_sizes(checked, [row["json"] for row in rows], limits)
    if oversized is not None:
        return refuse(oversized)
    # One transaction per batch: every measurement of it is stored and decided, or none.
    # The rows stored go through the state machine, so target_state, transitions, the dashboard,
    # reports and alerts see uploaded measurements as they see a probe's own; a duplicate uid
    # is answered as stored already and moves no state (this probe's re-send, or not its own).
    needed = request.app[CONFIRMATIONS_KEY]
    stored_count = await database.run(
        lambda store, _registry: save_and_decide(store, rows, confirmations_needed=needed))
    return web.json_response(
        {
            "received": len(body["measurements"]),
            "stored": stored_count,
            "duplicates": len(body["measurements"]) - stored_count,
        }
    )


# The probe's clock at upload (uploader.PROBE_TIME_HEADER): how far off its stamps are.
PROBE_TIME_HEADER = "X-Blockmon-Probe-Time"


def probe_clock_offset(request: web.Request, now: datetime) -> timedelta | None:
    """The collector's time minus the probe's, from the header; None without a usable one."""
    stamp = parse_ooni_time(request.headers.get(PROBE_TIME_HEADER, "")[:32])
    return None if stamp is None else now - stamp


def storable_row(measurement: dict[str, Any]) -> dict[str, Any]:
    confirmation = measurement["annotations"].get("confirmation", 0)
    # OONI annotations are strings: the runner sends the n-th re-test as "n".
    if isinstance(confirmation, str) and confirmation.isascii() and confirmation.isdigit():
        confirmation = int(confirmation)
    if isinstance(confirmation, bool) or not isinstance(confirmation, int) or confirmation < 0:
        confirmation = 0
    # run_id stays empty: the probe's runs live in the probe's own database, not here.
    return measurement_row(measurement, target_id=None, run_id=None, confirmation=confirmation)


async def health(request: web.Request) -> web.Response:
    database: DatabaseThreads = request.app[DATABASE_KEY]
    try:
        await database.run(lambda _store, registry: registry.ping())
    except Exception as error:  # any database failure means "not ready", reported as data
        log.warning("health check: database unavailable: %s", type(error).__name__)
        return web.json_response(
            {"status": "unavailable", "database": database.url.dialect}, status=503
        )
    return web.json_response({"status": "ok", "database": database.url.dialect, "api": "v1"})


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API}/register", register)
    app.router.add_post(f"{API}/check-in", check_in)
    app.router.add_post(f"{API}/measurements", submit_measurements)
    app.router.add_get(f"{API}/health", health)
