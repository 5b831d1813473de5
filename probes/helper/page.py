"""The helper's page fetch: GET over a pooled client, redirects followed hop by hop past the refused ranges."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from probes.analysis_compare import text_simhash
from probes.control_protocol import HttpRequestAnswer, ParsedControlRequest
from probes.dns import is_ip_literal
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.helper.settings import HelperSettings
from probes.helper.steps import HelperSteps
from probes.http import (
    REDIRECT_CODES,
    REQUEST_HEADERS,
    decode_body,
    extract_title,
    is_fetchable_url,
    read_profiled,
    response_header,
)
from probes.throughput import (
    CONTROL_THROUGHPUT_BYTES,
    CONTROL_THROUGHPUT_SECONDS,
    ThroughputProfile,
)


@dataclass(slots=True)
class PageBody:
    """What x_blockmon says of the page: hashes of its decoded text, and whether it was cut."""

    body_sha256: str = ""
    body_simhash: str = ""
    body_is_truncated: bool = False
    throughput: ThroughputProfile | None = None


class HelperResolveError(OSError):
    """The pooled client's name lookup failed (`failure`), or gave only refused addresses."""

    def __init__(self, message: str, failure: str) -> None:
        super().__init__(message)
        self.failure = failure


class PageFetcher:
    """One keep-alive client pool for every request; pages themselves are never cached."""

    def __init__(self, settings: HelperSettings, steps: HelperSteps) -> None:
        self.settings = settings
        self.steps = steps
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        context = ssl.create_default_context(cafile=self.settings.ca_file)
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self.steps),
            ssl=context,
            limit=self.settings.max_concurrency * 2,
            limit_per_host=32,
            keepalive_timeout=30,
            ttl_dns_cache=int(self.settings.cache_ttl),
        )
        # auto_decompress off: the probe's h11 client reads a body as sent, even when a server
        # compresses it against the request's Accept-Encoding: identity.
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def fetch_page(self, request: ParsedControlRequest) -> tuple[HttpRequestAnswer, PageBody]:
        """GET the URL, following redirects itself; the body read is capped at body_limit."""
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
            async with asyncio.timeout(self.settings.http_timeout):
                body = await self._follow(request, result, page)
        except NETWORK_ERRORS as error:
            result["failure"] = _classify_client_error(error)
            return result, page
        if body is not None:
            result["body_length"] = len(body)
            # The probe's own decoding (declared charset), so titles and body hashes compare.
            content_type = response_header(result.get("headers") or {}, "Content-Type")
            result["title"] = extract_title(body, content_type)
            text = decode_body(body, content_type)
            page.body_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
            page.body_simhash = text_simhash(text)
        return result, page

    async def _follow(
        self, request: ParsedControlRequest, result: HttpRequestAnswer, page: PageBody
    ) -> bytes | None:
        # Redirects are followed here, not by aiohttp: aiohttp does not consult the resolver for an
        # IP literal, so each hop's host is checked against the refused ranges before connecting.
        assert self.session is not None, "PageFetcher.start() was not awaited"
        # The probe's h11 client asks for no compression; the control must read the same bytes.
        headers = {**REQUEST_HEADERS, "Accept-Encoding": "identity", **request.headers}
        url = request.url
        for _hop in range(self.settings.max_redirects + 1):
            if not is_fetchable_url(url):
                # Another scheme, or a Location that does not parse: as the probe records it.
                result["failure"] = "http_invalid_response"
                return None
            parts = urlsplit(url)
            if "@" in parts.netloc:
                # The probe sends no credentials from a URL; aiohttp would make them Basic auth.
                url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
            host = parts.hostname or ""
            if is_ip_literal(host) and self.steps.is_refused_address(host):
                result["failure"] = "host_unreachable"
                return None
            async with self.session.get(url, headers=headers, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECT_CODES and location:
                    try:
                        url = urljoin(url, location.strip()).split("#", 1)[0]
                    except ValueError:
                        url = location.strip()  # refused as unfetchable on the next hop
                    continue
                # Read on past the cap, only counting, for a rate the probe's compares with.
                body, page.body_is_truncated, page.throughput = await read_profiled(
                    response.content,
                    self.settings.body_limit,
                    CONTROL_THROUGHPUT_BYTES,
                    CONTROL_THROUGHPUT_SECONDS,
                )
                result["status_code"] = response.status
                result["headers"] = {key: value for key, value in response.headers.items()}
                return body
        result["failure"] = "http_too_many_redirects"
        return None


class _GuardedResolver(AbstractResolver):
    """aiohttp resolver over the helper's cached DNS that never yields a refused address, so a
    redirect cannot turn the helper into a proxy into its own network."""

    def __init__(self, steps: HelperSteps) -> None:
        self.steps = steps

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses, failure = await self.steps.resolve(host)
        allowed = [ip for ip in addresses if not self.steps.is_refused_address(ip)]
        if addresses and not allowed:
            # Reported as a lookup with no usable answer: the control has no view of such a host.
            raise HelperResolveError(f"{host} resolves only to refused addresses", "dns_no_answer")
        if not allowed:
            raise HelperResolveError(f"{host}: {failure}", failure or "dns_no_answer")
        results: list[ResolveResult] = []
        for ip in allowed:
            family_of = socket.AF_INET6 if ":" in ip else socket.AF_INET
            results.append(
                {
                    "hostname": host,
                    "host": ip,
                    "port": port,
                    "family": family_of,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def _classify_client_error(error: BaseException) -> str:
    # aiohttp wraps the OS/SSL cause; the classifier reads the cause when there is one.
    cause = getattr(error, "os_error", None) or getattr(error, "certificate_error", None)
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cause = error.certificate_error
    for candidate in (error, cause, getattr(error, "__cause__", None)):
        if isinstance(candidate, HelperResolveError):
            return candidate.failure
    try:
        return classify_failure(cause if isinstance(cause, BaseException) else error)
    except Exception:  # noqa: BLE001 - a cause outside the vocabulary is still a failed fetch
        return "unknown_failure"
