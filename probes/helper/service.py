"""The helper's service: refuse what touches a refused range, then measure one control request."""

from __future__ import annotations

import asyncio

from aiohttp import web

from probes import garbage
from probes.control_protocol import ControlAnswer, ParsedControlRequest, RequestRefused
from probes.dns import is_ip_literal
from probes.endpoints import split_host_port
from probes.helper.answer import build_control_answer
from probes.helper.page import PageFetcher
from probes.helper.settings import HelperSettings
from probes.helper.steps import HelperSteps
from probes.tcp import format_endpoint


class ControlService:
    """The helper's state: settings, the cached steps, the page client and the concurrency gate."""

    def __init__(self, settings: HelperSettings) -> None:
        self.settings = settings
        self.steps = HelperSteps(settings)
        self.pages = PageFetcher(settings, self.steps)
        self.slots = asyncio.Semaphore(settings.max_concurrency)
        self.waiting = 0
        self.served = 0
        self._collector: asyncio.Task[None] | None = None

    async def start(self, _app: web.Application | None = None) -> None:
        await self.pages.start()
        garbage.tune_for_serving()
        self._collector = asyncio.get_running_loop().create_task(garbage.collect_old_garbage())

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._collector is not None:
            self._collector.cancel()
            self._collector = None
        garbage.restore()
        await self.pages.stop()

    async def control(self, request: ParsedControlRequest) -> ControlAnswer:
        steps = self.steps
        if is_ip_literal(request.host) and steps.is_refused_address(request.host.strip("[]")):
            raise RequestRefused(403, f"http_request: {request.host} is in a refused range")
        given = [split_host_port(endpoint)[0] for endpoint in request.endpoints]
        for endpoint, ip in zip(request.endpoints, given, strict=True):
            if steps.is_refused_address(ip):
                raise RequestRefused(403, f"tcp_connect: {endpoint} is in a refused range")
        addresses, dns_failure = await steps.resolve(request.host)
        for ip in addresses:
            if steps.is_refused_address(ip):
                raise RequestRefused(
                    403, f"http_request: {request.host} resolves to {ip}, a refused range"
                )
        endpoints = list(request.endpoints)
        for ip in addresses:
            endpoint = format_endpoint(ip, request.port)
            if endpoint not in endpoints:
                endpoints.append(endpoint)
        endpoints = endpoints[: self.settings.max_addresses * 2]
        server_name = request.host if request.scheme == "https" else None
        # The page is fetched first from the first address the helper resolved: that endpoint's
        # check leaves its connection for the page (one handshake); the others close theirs.
        page_endpoint = format_endpoint(addresses[0], request.port) if addresses else None
        page_key = (request.scheme, request.host, addresses[0], request.port) if addresses else None
        checks = [
            steps.check_endpoint(e, server_name, park=page_key if e == page_endpoint else None)
            for e in endpoints
        ]
        if endpoints == [page_endpoint]:
            # The usual single endpoint, the page's: the page would wait for its check anyway, so
            # check, then fetch, in this task; the page's deadline still counts from now.
            deadline = asyncio.get_running_loop().time() + self.settings.http_timeout
            results = [await checks[0]]
            page = await self.pages.fetch_page(request, deadline)
        else:
            page_task = asyncio.ensure_future(self.pages.fetch_page(request))
            results = await asyncio.gather(*checks)
            page = await page_task
        return build_control_answer(
            addresses=addresses,
            dns_failure=dns_failure,
            given=given,
            checks=list(zip(endpoints, results, strict=True)),
            page=page,
            is_refused=steps.is_refused_address,
            asn_of=steps.asn_of,
        )
