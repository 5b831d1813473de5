"""The lab's web servers as aiohttp protocol factories: real sites, the doctored page, the blockpage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lab.pages import (
    BLOCKPAGE_HTML,
    LARGE_PATH,
    render_doctored_page,
    render_dynamic_page,
    render_large_page,
    render_site_page,
)
from lab.state import LabState

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_HTML = "text/html"


def _requested_hostname(request: web.BaseRequest, state: LabState) -> str | None:
    """The site asked for: the Host header when the lab knows it, else whoever owns the address."""
    hostname = (request.host or "").partition(":")[0].rstrip(".").lower()
    if hostname in state.policies:
        return hostname
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return state.hostname_at.get(sockname[0]) if sockname else None


def make_site_handler(state: LabState) -> Handler:
    """Serve each site's own page; redirects and `dynamic` as configured."""
    cache: dict[tuple[str, str], bytes] = {}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        hostname = _requested_hostname(request, state)
        if hostname is None:
            return web.Response(status=404, text="no such site in the blockmon lab\n")
        redirect = state.redirects.get(hostname)
        if redirect is not None:
            return web.Response(status=301, headers={"Location": redirect})
        path = request.path
        if state.policies.get(hostname) == "dynamic":
            return web.Response(text=render_dynamic_page(hostname, path), content_type=_HTML)
        key = (hostname, path)
        body = cache.get(key)
        if body is None:
            large = path == LARGE_PATH
            body = render_large_page(hostname) if large else render_site_page(hostname, path).encode()
            if len(cache) < 50_000:  # bounded: the benchmark asks many distinct paths
                cache[key] = body
        return web.Response(body=body, content_type=_HTML, charset="utf-8")

    return handle


def make_doctored_handler(state: LabState) -> Handler:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        hostname = _requested_hostname(request, state) or "unknown"
        return web.Response(text=render_doctored_page(hostname, request.path), content_type=_HTML)

    return handle


async def serve_blockpage(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text=BLOCKPAGE_HTML, content_type=_HTML)


def make_protocol_factory(handler: Handler) -> web.Server:
    """An aiohttp low-level server: callable, it makes the protocol for one accepted socket."""
    return web.Server(handler, access_log=None)
