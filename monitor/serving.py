"""Serve an aiohttp app on HOST:PORT until SIGINT/SIGTERM (a ShutdownRequest), then clean it up."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from monitor.signals import ShutdownRequest
from probes.server_limits import (
    MAX_CONNECTIONS_PER_CLIENT,
    cap_connections_per_client,
    guard,
    runner_options,
)


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown: ShutdownRequest | None = None,
    on_listening: Callable[[int], None] | None = None,
    access_log_format: str | None = None,
    backlog: int = 128,
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
) -> None:
    """Serve until `shutdown` is requested (by default: SIGINT or SIGTERM, quietly).

    `on_listening` gets the bound port (the real one when 0 was asked) once the socket listens;
    `access_log_format` None means no access log; `max_connections_per_client` (0: none) caps
    the connections one client address holds open. An OSError from binding is raised after
    cleanup.
    """
    shutdown = shutdown or ShutdownRequest(quiet=True)
    # Every server (helper, collector, dashboard): hostile paths and queries refused, query
    # strings and (unless %a is in the format) client addresses kept out of the logs.
    guard(app)
    runner = web.AppRunner(app, **runner_options(access_log_format))
    await runner.setup()
    cap_connections_per_client(runner, max_connections_per_client)
    try:
        await web.TCPSite(runner, host, port, backlog=backlog, reuse_address=True).start()
        if on_listening is not None:
            on_listening(runner.addresses[0][1] if runner.addresses else port)
        shutdown.install()
        try:
            await shutdown.wait()
        finally:
            shutdown.remove()
    finally:
        await runner.cleanup()
