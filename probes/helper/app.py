"""The helper's aiohttp app: POST / and /api/v1/control behind the token and limits, GET /health."""

from __future__ import annotations

import asyncio
import hmac
import json

from aiohttp import web

from probes import __version__, server_limits
from probes.control_protocol import ErrorAnswer, RequestRefused, parse_control_request
from probes.helper.service import ControlService
from probes.helper.settings import HelperSettings
from probes.http import read_capped
from probes.server_limits import guard

SERVICE_KEY: web.AppKey[ControlService] = web.AppKey("control_service", ControlService)


def _error(status: int, message: str) -> web.Response:
    answer: ErrorAnswer = {"error": message}
    return web.json_response(answer, status=status)


def _authorized(request: web.Request, token: str | None) -> bool:
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    # Constant-time: the comparison must not tell an attacker how much of the token was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


async def handle_control(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    settings = service.settings
    if not _authorized(request, settings.token):
        return _error(401, "missing or wrong bearer token")
    too_large = f"body: larger than {settings.max_request_bytes} bytes"
    if request.content_length is not None and request.content_length > settings.max_request_bytes:
        return _error(400, too_large)
    try:  # a trickled body must not hold a connection and a handler for ever
        # asyncio.timeout, not wait_for: wait_for (3.11) runs the read as one more task.
        async with asyncio.timeout(server_limits.BODY_TIMEOUT_SECONDS):
            raw, oversized = await read_capped(request.content, settings.max_request_bytes)
    except TimeoutError:
        return _error(408, f"body: not received within {server_limits.BODY_TIMEOUT_SECONDS:g} s")
    if oversized:
        return _error(400, too_large)
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return _error(400, f"body: not JSON ({error})")
    try:
        control_request = parse_control_request(payload, settings.max_addresses)
    except RequestRefused as refusal:
        return _error(refusal.status, refusal.reason)
    if service.slots.locked() and service.waiting >= settings.max_queue:
        return _error(503, "saturated: too many control requests waiting, retry later")
    service.waiting += 1
    try:
        await service.slots.acquire()
    finally:
        service.waiting -= 1
    try:
        answer = await service.control(control_request)
    except RequestRefused as refusal:
        return _error(refusal.status, refusal.reason)
    finally:
        service.slots.release()
    service.served += 1
    return web.json_response(answer)


async def handle_health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "waiting": service.waiting,
            "served": service.served,
        }
    )


def build_app(settings: HelperSettings) -> web.Application:
    """The helper as an aiohttp Application: POST / and /api/v1/control, GET /health."""
    app = web.Application(client_max_size=settings.max_request_bytes)
    guard(app)  # probes.server_limits: NUL/control characters in paths and queries -> 400
    service = ControlService(settings)
    app[SERVICE_KEY] = service
    app.on_startup.append(service.start)
    app.on_cleanup.append(service.stop)
    app.router.add_post("/", handle_control)
    app.router.add_post("/api/v1/control", handle_control)
    app.router.add_get("/health", handle_health)
    return app
