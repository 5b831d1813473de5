"""The lab's control channel: a small HTTP API on the lab's own address, and a client for it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

from aiohttp import web

from lab.firewall import FirewallUnavailable
from lab.shaping import ShapingUnavailable

SetPolicy = Callable[[str, str], Awaitable[None]]
GetInfo = Callable[[], str]
SetVantageShaping = Callable[[bool], None]


def make_control_app(
    set_policy: SetPolicy, info_json: GetInfo, set_vantage_shaping: SetVantageShaping | None = None
) -> web.Application:
    """GET /info -> LabInfo JSON; POST /policy {"hostname", "policy"} -> the new pair;
    POST /vantage-shaping {"shaped": bool} shapes all the censored vantage's traffic, or stops."""

    async def get_info(request: web.Request) -> web.Response:
        return web.Response(text=info_json(), content_type="application/json")

    async def post_policy(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "POST /policy: body is not JSON"}, status=400)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("hostname", "policy")
        ):
            return web.json_response(
                {"error": 'POST /policy: body must be {"hostname": str, "policy": str}'}, status=400
            )
        try:
            await set_policy(body["hostname"], body["policy"])
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        except (FirewallUnavailable, ShapingUnavailable) as error:
            return web.json_response({"error": str(error)}, status=409)
        return web.json_response({"hostname": body["hostname"], "policy": body["policy"]})

    async def post_vantage_shaping(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("shaped"), bool):
            return web.json_response(
                {"error": 'POST /vantage-shaping: body must be {"shaped": true or false}'}, status=400
            )
        if set_vantage_shaping is None:
            return web.json_response({"error": "POST /vantage-shaping: not offered"}, status=404)
        try:
            set_vantage_shaping(body["shaped"])
        except ShapingUnavailable as error:
            return web.json_response({"error": str(error)}, status=409)
        return web.json_response({"shaped": body["shaped"]})

    app = web.Application()
    app.router.add_get("/info", get_info)
    app.router.add_post("/policy", post_policy)
    app.router.add_post("/vantage-shaping", post_vantage_shaping)
    return app


class LabControlError(RuntimeError):
    """The lab refused a control request; the message is the lab's own error line."""


def send_policy(control_url: str, hostname: str, policy: str, timeout: float = 10.0) -> None:
    """Change a policy in a lab running in another process (blocking; use asyncio.to_thread)."""
    _post(control_url, "/policy", {"hostname": hostname, "policy": policy}, timeout)


def send_vantage_shaping(control_url: str, shaped: bool, timeout: float = 10.0) -> None:
    """Shape (or stop shaping) all the censored vantage's traffic in a lab in another process."""
    _post(control_url, "/vantage-shaping", {"shaped": shaped}, timeout)


def _post(control_url: str, path: str, payload: dict[str, object], timeout: float) -> None:
    request = urllib.request.Request(
        control_url.rstrip("/") + path,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        # No proxy: the lab lives on loopback and a proxy from the environment would miss it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", str(error))
        except (json.JSONDecodeError, AttributeError):
            message = str(error)
        raise LabControlError(message) from None
    except OSError as error:
        raise LabControlError(f"lab control at {control_url} unreachable: {error}") from None
