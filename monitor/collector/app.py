"""The collector service: builds the aiohttp application and serves it until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from monitor.collector.backend import DatabaseThreads, DatabaseUnavailable
from monitor.collector.routes import (
    ADVICE_KEY,
    ASN_DATABASE_KEY,
    CONFIRMATIONS_KEY,
    DATABASE_KEY,
    LIMITS_KEY,
    UploadAdvice,
    add_routes,
)
from monitor.collector.validation import BatchLimits
from monitor.serving import serve_until_stopped
from monitor.settings import ScheduleSettings, Settings
from monitor.signals import ShutdownRequest
from monitor.store.database import DatabaseUrl
from probes.asn import open_asn_database
from probes.server_limits import MAX_CONNECTIONS_PER_CLIENT, refuse_hostile_requests

log = logging.getLogger(__name__)

# Without the client address (%a): the collector does not log where probes connect from.
PRIVATE_ACCESS_LOG = '%t "%r" %s %b %Tfs'
FULL_ACCESS_LOG = '%a %t "%r" %s %b %Tfs'


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Everything the collector needs; built once from settings and flags, passed down."""

    database: DatabaseUrl
    host: str = "127.0.0.1"
    port: int = 8470
    limits: BatchLimits = field(default_factory=BatchLimits)
    upload_advice: UploadAdvice = field(default_factory=UploadAdvice)
    database_threads: int | None = None
    log_client_addresses: bool = False
    # [collector] enrolment_secret: a standing, multi-use secret (stored hashed like the others).
    standing_enrolment_secret: str | None = None
    # [collector] asn_database: iptoasn file giving a registering probe's ASN/CC when it sends none.
    asn_database: str | None = None
    # [collector] max_connections_per_client (0: no cap).
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    # The loaded Settings: [schedule] confirmations, [alerts], and the dashboard.
    settings: Settings | None = None
    # Adds more routes to the app (the dashboard under /dashboard/, mounted by the command that
    # composes the collector: reports sit above the collector, so it cannot import them).
    mount: Callable[[web.Application], None] | None = None


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as JSON `{"error", "field"}`, and a crash in one request stays in it."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return web.json_response(
            {"error": f"{error.reason}: {request.method} {request.path}", "field": None},
            status=error.status,
        )
    except asyncio.CancelledError:
        raise
    except DatabaseUnavailable as error:
        log.warning("collector: database unavailable (%s) on %s %s", error, request.method, request.path)
        return web.json_response(
            {"error": "database unavailable, retry later", "field": None},
            status=503,
            headers={"Retry-After": "5"},
        )
    except Exception:
        log.exception("collector: internal error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error", "field": None}, status=500)


def build_app(config: CollectorConfig, database: DatabaseThreads) -> web.Application:
    # Bodies are capped by our own reader (with a JSON answer); aiohttp's cap sits just above it.
    app = web.Application(
        middlewares=[refuse_hostile_requests, json_errors],
        client_max_size=config.limits.max_body_bytes + 1024,
    )
    app[DATABASE_KEY] = database
    app[LIMITS_KEY] = config.limits
    app[ADVICE_KEY] = config.upload_advice
    if config.asn_database:
        app[ASN_DATABASE_KEY] = open_asn_database(config.asn_database)
    schedule = config.settings.schedule if config.settings is not None else ScheduleSettings()
    app[CONFIRMATIONS_KEY] = schedule.confirmations_needed
    add_routes(app)
    from monitor.alerts.service import attach_to_collector  # /metrics, and alerts if enabled

    attach_to_collector(app, config.settings, database)
    if config.mount is not None:
        config.mount(app)
    return app


async def serve_collector(config: CollectorConfig, shutdown: ShutdownRequest | None = None) -> None:
    """Migrate the database, then serve until `shutdown` is requested (SIGTERM/SIGINT by default)."""
    database = DatabaseThreads(config.database, config.database_threads)
    try:
        await asyncio.get_running_loop().run_in_executor(database.executor, database.migrate)
        # Always called: removing the setting must retire the secret it left in the database.
        standing = config.standing_enrolment_secret or None
        await database.run(
            lambda _store, registry: registry.ensure_standing_secret(standing, now=datetime.now(UTC))
        )

        def announce(bound_port: int) -> None:
            log.info(
                "collector listening on %s:%s, database %s",
                config.host,
                bound_port,
                config.database.describe(),
            )

        await serve_until_stopped(
            build_app(config, database),
            config.host,
            config.port,
            shutdown=shutdown,
            on_listening=announce,
            access_log_format=FULL_ACCESS_LOG if config.log_client_addresses else PRIVATE_ACCESS_LOG,
            max_connections_per_client=config.max_connections_per_client,
        )
    finally:
        database.close()
