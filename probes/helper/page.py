"""The helper's page fetch: GET over the checked (or a kept-alive) connection, redirects followed
hop by hop past the refused ranges."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urljoin

from probes.analysis_compare import text_simhash
from probes.connection import Connection
from probes.control_protocol import HttpRequestAnswer, ParsedControlRequest
from probes.dns import is_ip_literal
from probes.endpoints import request_target
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.exchange import CountingBudget, Exchange, exchange_get
from probes.helper.connections import ConnectionKey
from probes.helper.settings import HelperSettings
from probes.helper.steps import HelperSteps
from probes.http import (
    REDIRECT_CODES,
    REQUEST_HEADERS,
    decode_body,
    extract_title,
    is_fetchable_url,
    response_header,
    url_endpoint,
)
from probes.tcp import close_connection, format_endpoint
from probes.throughput import (
    CONTROL_THROUGHPUT_BYTES,
    CONTROL_THROUGHPUT_SECONDS,
    ThroughputProfile,
)

_CONTROL_COUNTING = CountingBudget(CONTROL_THROUGHPUT_BYTES, CONTROL_THROUGHPUT_SECONDS)

# Distinct bodies whose simhash is remembered (by their SHA-256): an unchanged page asked again
# costs no second simhash. 64 bytes of hex each way; a pure function, so no TTL.
SIMHASH_MEMO_SIZE = 4096


@dataclass(slots=True)
class PageBody:
    """What x_blockmon says of the page: hashes of its decoded text, and whether it was cut."""

    body_sha256: str = ""
    body_simhash: str = ""
    body_is_truncated: bool = False
    throughput: ThroughputProfile | None = None


class FetchFailure(Exception):
    """The page cannot be fetched, for the reason `failure` (a failure string)."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


class PageFetcher:
    """Fetches pages over the connections the endpoint checks opened; pages are never cached."""

    def __init__(self, settings: HelperSettings, steps: HelperSteps) -> None:
        self.settings = settings
        self.steps = steps
        self._simhashes: OrderedDict[str, str] = OrderedDict()

    async def start(self) -> None:
        self.steps.connections.start()

    async def stop(self) -> None:
        await self.steps.connections.close()

    async def fetch_page(
        self, request: ParsedControlRequest, deadline: float | None = None
    ) -> tuple[HttpRequestAnswer, PageBody]:
        """GET the URL, following redirects itself; the body read is capped at body_limit.

        The fetch ends by `deadline` (the loop's clock), by default http_timeout from now."""
        result: HttpRequestAnswer = {
            "body_length": -1,
            "failure": None,
            "title": "",
            "headers": {},
            "status_code": -1,
            "discovered_h3_endpoint": "",
        }
        page = PageBody()
        try:
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + self.settings.http_timeout
            elif deadline <= now:
                # The check this page waited for outlasted the page's time: a timeout, as when
                # the page fetch ran beside the check and gave up waiting.
                raise TimeoutError
            async with asyncio.timeout_at(deadline):
                exchange = await self._follow(request)
        except FetchFailure as failure:
            result["failure"] = failure.failure
            return result, page
        except NETWORK_ERRORS as error:
            result["failure"] = classify_failure(error)
            return result, page
        self._describe(exchange, result, page)
        return result, page

    def _describe(self, exchange: Exchange, result: HttpRequestAnswer, page: PageBody) -> None:
        body = exchange.body
        result["status_code"] = exchange.status
        # Name -> value; of a repeated header the last one, as the helper has always answered.
        headers = result["headers"] = dict(exchange.headers)
        result["body_length"] = len(body)
        page.body_is_truncated = exchange.body_is_truncated
        page.throughput = exchange.throughput
        # The probe's own decoding (declared charset), so titles and body hashes compare.
        content_type = response_header(headers, "Content-Type")
        result["title"] = extract_title(body, content_type)
        text = decode_body(body, content_type)
        page.body_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        page.body_simhash = self._simhash(page.body_sha256, text)

    def _simhash(self, sha256: str, text: str) -> str:
        simhash = self._simhashes.get(sha256)
        if simhash is not None:
            self._simhashes.move_to_end(sha256)
            return simhash
        simhash = self._simhashes[sha256] = text_simhash(text)
        if len(self._simhashes) > SIMHASH_MEMO_SIZE:
            self._simhashes.popitem(last=False)
        return simhash

    async def _follow(self, request: ParsedControlRequest) -> Exchange:
        # Redirects are followed here, each hop's host checked against the refused ranges
        # before any connection (a name through steps.page_addresses, an IP literal here).
        # The probe's h11 client asks for no compression; the control must read the same bytes.
        headers = {**REQUEST_HEADERS, "Accept-Encoding": "identity", **request.headers}
        url = request.url
        for _hop in range(self.settings.max_redirects + 1):
            if not is_fetchable_url(url):
                # Another scheme, or a Location that does not parse: as the probe records it.
                raise FetchFailure("http_invalid_response")
            exchange = await self._get(url, headers)
            location = next((v for k, v in exchange.headers if k.lower() == "location"), None)
            if exchange.status in REDIRECT_CODES and location:
                try:
                    url = urljoin(url, location.strip()).split("#", 1)[0]
                except ValueError:
                    url = location.strip()  # refused as unfetchable on the next hop
                continue
            return exchange
        raise FetchFailure("http_too_many_redirects")

    async def _get(self, url: str, headers: dict[str, str]) -> Exchange:
        """One GET of `url` at the first of its allowed addresses that takes a connection."""
        scheme, host, port = url_endpoint(url)
        try:
            host = host if host.isascii() else host.encode("idna").decode("ascii")
        except UnicodeError:
            raise FetchFailure("http_invalid_response") from None
        # The probe sends no credentials from a URL (user:password@): only Host and its headers.
        lines = [("Host", _host_header(host, port, scheme)), *headers.items()]
        target = request_target(url)  # as the probe sends it
        server_name = host.strip("[]") if scheme == "https" else None
        failure = "dns_no_answer"
        for ip in await self._allowed_addresses(host):
            key: ConnectionKey = (scheme, host, ip, port)
            waiting = self.steps.connections.take(key)
            if waiting is not None and not waiting[1]:
                try:
                    return await self._exchange(waiting[0], key, target, lines, keep_alive=True)
                except NETWORK_ERRORS:
                    waiting = None  # closed by the server while it waited: once more, anew
            endpoint = format_endpoint(ip, port)
            if waiting is None:
                # The endpoint's check (shared with the answer's, or cached) opens the connection.
                check = await self.steps.check_endpoint(endpoint, server_name, park=key)
                if check.failure is not None:
                    failure = check.failure
                    continue
                waiting = self.steps.connections.take(key)
            if waiting is None:
                # The check came from the cache, so this origin was asked before: this GET opens
                # a connection of its own, and keeps it alive for the next.
                connected, connection = await self.steps.connect(endpoint, server_name)
                if connection is None:
                    failure = connected.failure or "unknown_failure"
                    continue
                waiting = (connection, False)
            # A first contact's connection (handed over by its check) is closed after the page:
            # kept alive, thousands of distinct sites would each hold one.
            connection, handed_over = waiting
            return await self._exchange(connection, key, target, lines, keep_alive=not handed_over)
        raise FetchFailure(failure)

    async def _allowed_addresses(self, host: str) -> list[str]:
        """The host's addresses outside the refused ranges; none is a FetchFailure."""
        ip_host = host.strip("[]")
        if is_ip_literal(host):
            if self.steps.is_refused_address(ip_host):
                raise FetchFailure("host_unreachable")
            return [ip_host]
        addresses, failure = await self.steps.resolve(host)
        allowed = [ip for ip in addresses if not self.steps.is_refused_address(ip)]
        if not allowed:
            # Only refused addresses reads as a lookup with no usable answer: the control has no
            # view of such a host, and must not become a proxy into its own network.
            raise FetchFailure("dns_no_answer" if addresses else failure or "dns_no_answer")
        return allowed

    async def _exchange(
        self,
        connection: Connection,
        key: ConnectionKey,
        target: str,
        lines: list[tuple[str, str]],
        *,
        keep_alive: bool,
    ) -> Exchange:
        try:
            # Read on past the cap, only counting, for a rate the probe's compares with.
            exchange = await exchange_get(connection, target, lines, self.settings.body_limit,
                                          _CONTROL_COUNTING)
        except BaseException:
            await close_connection(connection)
            raise
        if exchange.reusable and keep_alive:
            self.steps.connections.keep_alive(key, connection)
        else:
            await close_connection(connection)
        return exchange


def _host_header(host: str, port: int, scheme: str) -> str:
    text = f"[{host.strip('[]')}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return text if port == default else f"{text}:{port}"
