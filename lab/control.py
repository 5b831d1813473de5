"""The lab's control channel: a small HTTP API on the lab's own address, and a client for it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

from aiohttp import web

from lab.firewall import FirewallUnavailable

SetPolicy = Callable[[str, str], Awaitable[None]]
GetInfo = Callable[[], str]


def make_control_app(set_policy: SetPolicy, info_json: GetInfo) -> web.Application:
    """GET /info -> LabInfo JSON; POST /policy {"hostname", "policy"} -> the new pair."""

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
        except FirewallUnavailable as error:
            return web.json_response({"error": str(error)}, status=409)
        return web.json_response({"hostname": body["hostname"], "policy": body["policy"]})

    app = web.Application()
    app.router.add_get("/info", get_info)
    app.router.add_post("/policy", post_policy)
    return app


class LabControlError(RuntimeError):
    """The lab refused a control request; the message is the lab's own error line."""


def send_policy(control_url: str, hostname: str, policy: str, timeout: float = 10.0) -> None:
    """Change a policy in a lab running in another process (blocking; use asyncio.to_thread)."""
    request = urllib.request.Request(
        control_url.rstrip("/") + "/policy",
        data=json.dumps({"hostname": hostname, "policy": policy}).encode(),
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
