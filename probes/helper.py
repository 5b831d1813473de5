"""The control helper: an oohelperd-shaped aiohttp app measuring a URL from the uncensored side."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from probes import __version__
from probes.analysis_compare import text_simhash
from probes.asn import open_asn_database
from probes.bogons import is_bogon, parse_networks
from probes.dns import addresses_from_queries, is_ip_literal, is_valid_hostname, probe_dns
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http import (
    REDIRECT_CODES,
    REQUEST_HEADERS,
    decode_body,
    extract_title,
    is_fetchable_url,
    response_header,
)
from probes.options import ProbeOptions
from probes.tcp import close_streams, format_endpoint, probe_tcp
from probes.tls import probe_tls

# --allow-private makes every address count as public (the bogon filter then lets all through).
EVERYTHING = ("0.0.0.0/0", "::/0")
# Request headers a probe may pass on; anything else (Cookie, Authorization, Host) is dropped so the
# helper cannot be used to replay credentials.
FORWARDED_HEADERS = ("User-Agent", "Accept", "Accept-Language")
DEFAULT_PORTS = {"http": 80, "https": 443}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HelperSettings:
    """Everything the helper needs; limits are documented in docs/control-protocol.md."""

    resolvers: tuple[str, ...] = ()
    ca_file: str | None = None
    public_ranges: tuple[str, ...] = ()
    allow_private: bool = False
    token: str | None = None
    max_concurrency: int = 64
    # Requests allowed to wait for a slot; one more gets 503 at once.
    max_queue: int = 512
    max_request_bytes: int = 64 * 1024
    max_addresses: int = 16
    body_limit: int = 1024 * 1024
    max_redirects: int = 10
    dns_timeout: float = 4.0
    connect_timeout: float = 5.0
    tls_timeout: float = 5.0
    http_timeout: float = 10.0
    # The control's view of an endpoint does not change within seconds, while a round sends many
    # URLs of one host at once: per-host DNS and per-(address, SNI) TCP/TLS results are reused.
    cache_ttl: float = 30.0
    cache_size: int = 8192
    # iptoasn TSV (probes/asn.py): fills ip_info[addr].asn; unset = asn 0 (unknown), as before.
    asn_database: str | None = None

    def probe_options(self) -> ProbeOptions:
        return ProbeOptions(
            resolvers=self.resolvers,
            ca_file=self.ca_file,
            lab_public_ranges=EVERYTHING if self.allow_private else self.public_ranges,
            dns_timeout=self.dns_timeout,
            connect_timeout=self.connect_timeout,
            tls_timeout=self.tls_timeout,
            http_timeout=self.http_timeout,
            body_limit=self.body_limit,
            max_redirects=self.max_redirects,
        )


class RequestRefused(Exception):
    """A control request the helper will not serve; carries the HTTP status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TTLCache:
    """Results (or in-flight computations) by key for `ttl` seconds; concurrent askers share one."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[Any, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: Any, compute: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return await asyncio.shield(cached[1])
        if len(self._entries) >= self.size:
            self._evict(now)
        future: asyncio.Future[T] = asyncio.ensure_future(compute())
        self._entries[key] = (now, future)
        return await asyncio.shield(future)

    def _evict(self, now: float) -> None:
        for key in [k for k, (at, _) in self._entries.items() if now - at >= self.ttl]:
            del self._entries[key]
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]


@dataclass(frozen=True, slots=True)
class ControlRequest:
    url: str
    scheme: str
    host: str
    port: int
    endpoints: tuple[str, ...]
    headers: dict[str, str]


def parse_control_request(payload: Any, max_addresses: int) -> ControlRequest:
    """Validate the oohelperd body; a bad one raises RequestRefused(400) naming the field."""
    if not isinstance(payload, dict):
        raise RequestRefused(400, "body: expected a JSON object")
    url = payload.get("http_request")
    if not isinstance(url, str) or not url:
        raise RequestRefused(400, "http_request: expected a URL string")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RequestRefused(400, f"http_request: bad URL {url[:200]!r}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RequestRefused(
            400, f"http_request: only http and https URLs, not {scheme or 'none'!r}"
        )
    if not parts.hostname:
        raise RequestRefused(400, f"http_request: no host in {url[:200]!r}")
    if not is_valid_hostname(parts.hostname):
        raise RequestRefused(
            400, f"http_request: host {parts.hostname[:200]!r} is not a valid DNS name"
        )
    endpoints_field = payload.get("tcp_connect", [])
    if not isinstance(endpoints_field, list) or not all(
        isinstance(e, str) for e in endpoints_field
    ):
        raise RequestRefused(400, 'tcp_connect: expected a list of "ip:port" strings')
    if len(endpoints_field) > max_addresses:
        raise RequestRefused(
            400, f"tcp_connect: at most {max_addresses} endpoints, got {len(endpoints_field)}"
        )
    endpoints = tuple(dict.fromkeys(_parse_endpoint(e) for e in endpoints_field))
    headers_field = payload.get("http_request_headers", {})
    if not isinstance(headers_field, dict):
        raise RequestRefused(400, "http_request_headers: expected an object of name -> [values]")
    # The probe's h11 client asks for no compression; the control must read the same bytes.
    headers = {**REQUEST_HEADERS, "Accept-Encoding": "identity"}
    for name in FORWARDED_HEADERS:
        for key, values in headers_field.items():
            if (
                key.lower() == name.lower()
                and isinstance(values, list)
                and values
                and isinstance(values[0], str)
            ):
                headers[name] = values[0][:1024]
    return ControlRequest(
        url, scheme, parts.hostname, port or DEFAULT_PORTS[scheme], endpoints, headers
    )


def _parse_endpoint(text: str) -> str:
    host, separator, port_text = text.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise RequestRefused(400, f'tcp_connect: {text[:100]!r} is not "ip:port"') from None
    if not separator or not 0 < port < 65536:
        raise RequestRefused(400, f"tcp_connect: {text[:100]!r} has no valid port")
    return format_endpoint(str(ip), port)


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


class ControlService:
    """The helper's state: settings, caches, the HTTP client pool and the concurrency gate."""

    def __init__(self, settings: HelperSettings) -> None:
        self.settings = settings
        self.options = settings.probe_options()
        self.public_networks = parse_networks(self.options.lab_public_ranges)
        # Loaded (and checked) once by `blockmon helper` before serving; cached per process.
        self.asn_database = open_asn_database(settings.asn_database) if settings.asn_database else None
        self._refused: dict[str, bool] = {}
        self.dns_cache = TTLCache(settings.cache_ttl, settings.cache_size)
        self.endpoint_cache = TTLCache(settings.cache_ttl, settings.cache_size)
        self.slots = asyncio.Semaphore(settings.max_concurrency)
        self.waiting = 0
        self.served = 0
        self.session: aiohttp.ClientSession | None = None

    # -------------------------------------------------------- lifecycle

    async def start(self, _app: web.Application | None = None) -> None:
        context = ssl.create_default_context(cafile=self.settings.ca_file)
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self),
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

    async def stop(self, _app: web.Application | None = None) -> None:
        if self.session is not None:
            await self.session.close()

    # -------------------------------------------------------- steps

    def is_refused_address(self, ip: str) -> bool:
        refused = self._refused.get(ip)
        if refused is None:
            refused = is_bogon(ip, self.public_networks)
            if len(self._refused) < self.settings.cache_size:
                self._refused[ip] = refused
        return refused

    def asn_of(self, ip: str) -> int:
        info = self.asn_database.lookup(ip) if self.asn_database is not None else None
        return info.asn if info else 0

    async def resolve(self, host: str) -> tuple[list[str], str | None]:
        """(addresses, failure) for a hostname, cached; an IP literal resolves to itself."""
        if is_ip_literal(host):
            return [host.strip("[]")], None

        async def lookup() -> tuple[list[str], str | None]:
            queries = await probe_dns(host, self.options)
            addresses = addresses_from_queries(queries)
            if addresses:
                return addresses, None
            failures = [
                q["failure"] for q in queries if q.get("failure") and q.get("query_type") == "A"
            ]
            failures += [q["failure"] for q in queries if q.get("failure")]
            return [], failures[0] if failures else "dns_no_answer"

        return await self.dns_cache.get(host.lower(), lookup)

    async def check_endpoint(self, endpoint: str, server_name: str | None) -> dict[str, Any]:
        """TCP (and TLS when server_name is given) to one endpoint, cached per (endpoint, SNI)."""

        async def measure() -> dict[str, Any]:
            ip, port = _split(endpoint)
            tcp_entry, streams = await probe_tcp(ip, port, self.options)
            result: dict[str, Any] = {"tcp": tcp_entry["status"], "tls": None}
            if streams is None or server_name is None:
                await close_streams(streams)
                return result
            tls_entry, tls_streams = await probe_tls(
                ip, port, server_name, self.options, streams=streams
            )
            await close_streams(tls_streams)
            result["tls"] = tls_entry
            return result

        return await self.endpoint_cache.get((endpoint, server_name), measure)

    async def fetch_page(self, request: ControlRequest) -> dict[str, Any]:
        """GET the URL over the pooled client, following redirects itself; the body read is capped."""
        result: dict[str, Any] = {
            "body_length": -1,
            "failure": None,
            "title": "",
            "headers": {},
            "status_code": -1,
            "discovered_h3_endpoint": "",
        }
        extra: dict[str, Any] = {"body_sha256": "", "body_simhash": "", "body_is_truncated": False}
        try:
            async with asyncio.timeout(self.settings.http_timeout):
                body = await self._follow(request, result, extra)
        except NETWORK_ERRORS as error:
            result["failure"] = _classify_client_error(error)
            return {"http_request": result, "x_blockmon": extra}
        if body is not None:
            result["body_length"] = len(body)
            # The probe's own decoding (declared charset), so titles and body hashes compare.
            content_type = response_header(result["headers"], "Content-Type")
            result["title"] = extract_title(body, content_type)
            text = decode_body(body, content_type)
            extra["body_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
            extra["body_simhash"] = text_simhash(text)
        return {"http_request": result, "x_blockmon": extra}

    async def _follow(
        self, request: ControlRequest, result: dict[str, Any], extra: dict[str, Any]
    ) -> bytes | None:
        # Redirects are followed here, not by aiohttp: aiohttp does not consult the resolver for an
        # IP literal, so each hop's host is checked against the refused ranges before connecting.
        assert self.session is not None, "ControlService.start() was not awaited"
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
            if is_ip_literal(host) and self.is_refused_address(host):
                result["failure"] = "host_unreachable"
                return None
            async with self.session.get(
                url, headers=request.headers, allow_redirects=False
            ) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECT_CODES and location:
                    try:
                        url = urljoin(url, location.strip()).split("#", 1)[0]
                    except ValueError:
                        url = location.strip()  # refused as unfetchable on the next hop
                    continue
                # read(n) returns what has arrived so far, not n bytes: read until the cap or EOF.
                limit = self.settings.body_limit
                body = bytearray()
                while len(body) <= limit:
                    block = await response.content.read(limit + 1 - len(body))
                    if not block:
                        break
                    body += block
                extra["body_is_truncated"] = len(body) > limit
                result["status_code"] = response.status
                result["headers"] = {key: value for key, value in response.headers.items()}
                return bytes(body[:limit])
        result["failure"] = "http_too_many_redirects"
        return None

    # -------------------------------------------------------- the protocol

    async def control(self, request: ControlRequest) -> dict[str, Any]:
        if is_ip_literal(request.host) and self.is_refused_address(request.host.strip("[]")):
            raise RequestRefused(403, f"http_request: {request.host} is in a refused range")
        for endpoint in request.endpoints:
            if self.is_refused_address(_split(endpoint)[0]):
                raise RequestRefused(403, f"tcp_connect: {endpoint} is in a refused range")
        addresses, dns_failure = await self.resolve(request.host)
        for ip in addresses:
            if self.is_refused_address(ip):
                raise RequestRefused(
                    403, f"http_request: {request.host} resolves to {ip}, a refused range"
                )
        given = [_split(e)[0] for e in request.endpoints]
        endpoints = list(request.endpoints)
        for ip in addresses:
            endpoint = format_endpoint(ip, request.port)
            if endpoint not in endpoints:
                endpoints.append(endpoint)
        endpoints = endpoints[: self.settings.max_addresses * 2]
        server_name = request.host if request.scheme == "https" else None
        page_task = asyncio.ensure_future(self.fetch_page(request))
        checks = await asyncio.gather(*(self.check_endpoint(e, server_name) for e in endpoints))
        page = await page_task
        tcp_connect: dict[str, Any] = {}
        tls_handshake: dict[str, Any] = {}
        chains: dict[str, Any] = {}
        ip_info: dict[str, Any] = {}
        for endpoint, check in zip(endpoints, checks, strict=True):
            ip = _split(endpoint)[0]
            tcp_connect[endpoint] = {
                "status": bool(check["tcp"]["success"]),
                "failure": check["tcp"]["failure"],
            }
            flags = (1 if ip in addresses else 0) | (2 if ip in given else 0)
            flags |= 4 if self.is_refused_address(ip) else 0
            tls = check["tls"]
            if tls is not None:
                tls_handshake[endpoint] = {
                    "server_name": tls["server_name"],
                    "status": tls["failure"] is None,
                    "failure": tls["failure"],
                }
                chains[endpoint] = tls["certificate_chain"]
                flags |= 8 if tls["failure"] is None else 0
            ip_info[ip] = {"asn": self.asn_of(ip), "flags": ip_info.get(ip, {}).get("flags", 0) | flags}
        return {
            "dns": {"failure": dns_failure, "addrs": addresses},
            "tcp_connect": tcp_connect,
            "tls_handshake": tls_handshake,
            "quic_handshake": {},
            "http_request": page["http_request"],
            "http3_request": None,
            "ip_info": ip_info,
            "x_blockmon": {"certificate_chains": chains, **page["x_blockmon"]},
        }


class HelperResolveError(OSError):
    """The pooled client's name lookup failed (`failure`), or gave only refused addresses."""

    def __init__(self, message: str, failure: str) -> None:
        super().__init__(message)
        self.failure = failure


class _GuardedResolver(AbstractResolver):
    """aiohttp resolver over the helper's cached DNS that never yields a refused address, so a
    redirect cannot turn the helper into a proxy into its own network."""

    def __init__(self, service: ControlService) -> None:
        self.service = service

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses, failure = await self.service.resolve(host)
        allowed = [ip for ip in addresses if not self.service.is_refused_address(ip)]
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


# ---------------------------------------------------------------- the web app

SERVICE_KEY: web.AppKey[ControlService] = web.AppKey("control_service", ControlService)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


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
    if request.content_length is not None and request.content_length > settings.max_request_bytes:
        return _error(400, f"body: larger than {settings.max_request_bytes} bytes")
    # read(n) gives what has arrived so far: read until EOF or one byte past the cap.
    raw = b""
    while len(raw) <= settings.max_request_bytes:
        block = await request.content.read(settings.max_request_bytes + 1 - len(raw))
        if not block:
            break
        raw += block
    if len(raw) > settings.max_request_bytes:
        return _error(400, f"body: larger than {settings.max_request_bytes} bytes")
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
        response = await service.control(control_request)
    except RequestRefused as refusal:
        return _error(refusal.status, refusal.reason)
    finally:
        service.slots.release()
    service.served += 1
    return web.json_response(response)


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
    service = ControlService(settings)
    app[SERVICE_KEY] = service
    app.on_startup.append(service.start)
    app.on_cleanup.append(service.stop)
    app.router.add_post("/", handle_control)
    app.router.add_post("/api/v1/control", handle_control)
    app.router.add_get("/health", handle_health)
    return app
