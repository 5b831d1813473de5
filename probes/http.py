"""HTTP step: a browser-like GET over an open connection, following redirects hop by hop."""

from __future__ import annotations

import asyncio
import codecs
import functools
import html
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import dns.exception
import dns.name

from probes.bogons import is_bogon
from probes.connection import Connection
from probes.dns import addresses_from_queries, is_ip_literal, is_valid_hostname, probe_dns
from probes.endpoints import DEFAULT_PORTS, request_target
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.http_stream import ResponseStream
from probes.http_wire import ResponseHead
from probes.measurement_types import DnsQuery, TcpConnect, TlsHandshake
from probes.options import ProbeOptions
from probes.tcp import close_connection, format_endpoint, probe_tcp
from probes.throughput import ThroughputRecorder
from probes.tls import probe_tls

# A current desktop Firefox, with the languages a reader in Kazakhstan would send.
REQUEST_HEADERS: dict[str, str] = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "ru,kk;q=0.9,en;q=0.8",
}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Found with plain searches, not one backtracking regex: "<title" repeated over 64 KiB made
# r"<title[^>]*>(.*?)</title" scan to the end from each one (4 s of CPU in the helper's loop).
_TITLE_OPEN = re.compile(rb"<title", re.IGNORECASE)
_TITLE_CLOSE = re.compile(rb"</title", re.IGNORECASE)
# Only the start of a page is searched for the title: it sits in <head>.
_TITLE_SEARCH_LIMIT = 64 * 1024


_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# A <meta> charset must sit in the first 1024 bytes (HTML standard, "prescan").
_META_SEARCH_LIMIT = 1024


def detect_charset(body: bytes, content_type: str | None = None) -> str:
    """The page's declared encoding (header first, then <meta>), if Python knows it; else utf-8.

    Russian-language sites in Kazakhstan still serve windows-1251: decoding those as UTF-8 would
    erase every Cyrillic letter, and with them the words blockpage fingerprints look for.
    """
    declared = _HEADER_CHARSET.search(content_type or "")
    name = declared.group(1) if declared else None
    if name is None:
        meta = _META_CHARSET.search(body[:_META_SEARCH_LIMIT])
        name = meta.group(1).decode("ascii", errors="replace") if meta else None
    if name:
        try:
            return codecs.lookup(name).name
        except LookupError:
            pass
    return "utf-8"


def decode_body(body: bytes, content_type: str | None = None) -> str:
    return _decode(body, detect_charset(body, content_type))


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, ValueError):
        # A codec Python knows but that is no text encoding (base64, idna, undefined): the page
        # declared nonsense, so read it as a browser would, as UTF-8.
        return data.decode("utf-8", errors="replace")


def extract_title(body: bytes, content_type: str | None = None) -> str:
    """The page's <title>, unescaped and with whitespace collapsed; "" when it has none."""
    head = body[:_TITLE_SEARCH_LIMIT]
    opening = _TITLE_OPEN.search(head)
    start = head.find(b">", opening.end()) if opening else -1
    closing = _TITLE_CLOSE.search(head, start + 1) if start >= 0 else None
    if closing is None:
        return ""
    charset = detect_charset(body, content_type)
    text = html.unescape(_decode(head[start + 1 : closing.start()], charset))
    return " ".join(text.split())


class ByteStream(Protocol):
    """What read_capped reads: aiohttp's StreamReader (requests and responses), asyncio's too."""

    async def read(self, n: int = -1) -> bytes: ...


async def read_capped(stream: ByteStream, limit: int) -> tuple[bytes, bool]:
    """(the first `limit` bytes of the body, whether it had more); never holds more than limit + 1.

    read(n) returns what has arrived so far, not n bytes, so it is called until the cap or EOF.
    """
    body = bytearray()
    while len(body) <= limit:
        block = await stream.read(limit + 1 - len(body))
        if not block:
            break
        body += block
    return bytes(body[:limit]), len(body) > limit


def url_endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL; the caller has validated it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[scheme]


def is_bogon_address(ip: str, options: ProbeOptions) -> bool:
    return is_bogon(ip, public_networks_of(options))


def public_networks_of(options: ProbeOptions) -> tuple[IPNetwork, ...]:
    """options.public_networks(), parsed once per set of ranges rather than once per address."""
    return _parsed_public_networks(options)


@functools.lru_cache(maxsize=64)
def _parsed_public_networks(options: ProbeOptions) -> tuple[IPNetwork, ...]:
    return options.public_networks()


@dataclass(slots=True)
class HopSteps:
    """The DNS, TCP and TLS entries of redirect hops, each marked with its hop number.

    OONI records every hop's steps in queries, tcp_connect and tls_handshakes; the mark
    (`x_redirect_hop`: 1 for the first redirect target; 0, falsy, for the URL itself when
    probe_http opens its own connection) keeps them apart from the measured URL's own steps,
    which are what the analysis compares with the control.
    """

    queries: list[DnsQuery] = field(default_factory=list)
    tcp_connect: list[TcpConnect] = field(default_factory=list)
    tls_handshakes: list[TlsHandshake] = field(default_factory=list)
    hop: int = 0

    def add(self, kind: str, entry: DnsQuery | TcpConnect | TlsHandshake) -> None:
        entry["x_redirect_hop"] = self.hop
        getattr(self, kind).append(entry)


async def probe_http(
    url: str,
    options: ProbeOptions,
    *,
    connection: Connection | None = None,
    address: str | None = None,
    started: float | None = None,
    hop_steps: HopSteps | None = None,
) -> list[dict[str, Any]]:
    """GET `url` (over `connection` when given) and every redirect; requests[] most recent first.

    Redirect hops take fresh DNS, TCP and TLS steps of their own, as a browser would; their
    entries go to `hop_steps` when given.
    """
    started = time.monotonic() if started is None else started
    steps = hop_steps if hop_steps is not None else HopSteps()
    requests: list[dict[str, Any]] = []
    current = url
    while True:
        if connection is None:
            steps.hop = len(requests)  # 0 is the URL itself, 1 its first redirect target
            entry = await _fetch_fresh(current, options, started, steps)
        else:
            entry = await fetch_one(current, connection, address or "", options, started=started)
            connection = None
        requests.insert(0, entry)
        next_url = _redirect_target(current, entry)
        if next_url is None:
            return requests
        if len(requests) > options.max_redirects:
            requests.insert(0, new_request_entry(next_url, "", time.monotonic() - started))
            requests[0]["failure"] = "http_too_many_redirects"
            requests[0]["t"] = requests[0]["t0"]
            return requests
        current = next_url


def _redirect_target(current: str, entry: dict[str, Any]) -> str | None:
    response = entry.get("response")
    if entry["failure"] or not response or response["code"] not in REDIRECT_CODES:
        return None
    location = _header(response["headers_list"], "location")
    if not location:
        return None
    try:
        # Header values are kept as latin-1; a Location in raw UTF-8 means UTF-8, as to browsers.
        location = location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    try:
        target = urljoin(current, location.strip())
    except ValueError:
        return location.strip()  # malformed (an unclosed "[" host): _fetch_fresh records the failure
    return _with_ascii_host(target.split("#", 1)[0])


def _with_ascii_host(url: str) -> str:
    """The URL with an internationalized host in the ASCII form DNS, SNI and Host carry."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        ascii_host = host if host is None or host.isascii() else _dns_text(host)
    except (ValueError, dns.exception.DNSException):
        return url  # is_fetchable_url refuses it
    if ascii_host == host:
        return url
    userinfo, at, host_and_port = parts.netloc.rpartition("@")
    port = host_and_port[host_and_port.rfind(":") :] if ":" in host_and_port else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{ascii_host}{port}"))


def _dns_text(host: str) -> str:
    return str(dns.name.from_text(host).to_text(omit_final_dot=True))


def _header(headers_list: list[list[str]], name: str) -> str | None:
    for key, value in headers_list:
        if key.lower() == name:
            return value
    return None


def response_header(headers: dict[str, str], name: str) -> str | None:
    """A header's value from a name -> value dict, whatever the case of its name."""
    return _header([[key, value] for key, value in headers.items()], name.lower())


async def _fetch_fresh(url: str, options: ProbeOptions, started: float, steps: HopSteps) -> dict[str, Any]:
    """One hop with its own DNS, TCP and TLS: tries each public address until one works."""
    t0 = time.monotonic() - started
    if not is_fetchable_url(url):
        # A redirect to another scheme or to a URL that does not parse (bad port, bad IPv6 host).
        entry = new_request_entry(url, "", t0)
        entry["failure"] = "http_invalid_response"
        entry["t"] = entry["t0"]
        return entry
    scheme, host, port = url_endpoint(url)
    if is_ip_literal(host):
        addresses, failure = [host.strip("[]")], None
    else:
        queries = await probe_dns(host, options, started=started)
        for query in queries:
            steps.add("queries", query)
        addresses = addresses_from_queries(queries)
        failure = next((q["failure"] for q in queries if q["failure"]), "dns_no_answer")
    last_address = ""
    for ip in addresses:
        if is_bogon_address(ip, options):
            continue  # never connect to a bogon: a lying resolver may point us anywhere
        last_address = format_endpoint(ip, port)
        tcp_entry, connection = await probe_tcp(ip, port, options, started=started)
        steps.add("tcp_connect", tcp_entry)
        if connection is None:
            failure = tcp_entry["status"]["failure"]
            continue
        if scheme == "https":
            tls_entry, connection = await probe_tls(ip, port, host, options, connection=connection, started=started)
            steps.add("tls_handshakes", tls_entry)
            if connection is None:
                failure = tls_entry["failure"]
                continue
        return await fetch_one(url, connection, last_address, options, started=started)
    entry = new_request_entry(url, last_address, t0)
    entry["failure"] = failure or "unknown_failure"
    entry["t"] = round(time.monotonic() - started, 6)
    return entry


def is_fetchable_url(url: str) -> bool:
    """An http(s) URL with a valid host and port (a redirect's Location may be anything)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname
    return parts.scheme.lower() in DEFAULT_PORTS and bool(host) and port != 0 and is_valid_hostname(host or "")


def new_request_entry(url: str, address: str, t0: float) -> dict[str, Any]:
    """A requests[] item (OONI df-001) with the headers we send and no response yet."""
    host_header = _host_header(url)
    headers = {"Host": host_header, **REQUEST_HEADERS} if host_header else dict(REQUEST_HEADERS)
    return {
        "request": {
            "method": "GET",
            "url": url,
            "headers": headers,
            "headers_list": [[key, value] for key, value in headers.items()],
        },
        "response": None,
        "address": address,
        "failure": None,
        "t0": round(t0, 6),
        "t": None,
    }


def _host_header(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""  # a malformed redirect target, recorded as it came
    if not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = parts.scheme.lower()
    if port and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return host


async def fetch_one(
    url: str, connection: Connection, address: str, options: ProbeOptions, *, started: float | None = None
) -> dict[str, Any]:
    """One GET over already-open connection, which it closes; the response is kept even if partial.

    Past body_limit the body is read on and discarded, up to the throughput budget, so that
    `x_throughput` (a blockmon addition) has a rate even for a page larger than the cap.
    """
    started = time.monotonic() if started is None else started
    entry = new_request_entry(url, address, time.monotonic() - started)
    body = bytearray()
    state = _ExchangeState(ThroughputRecorder(time.monotonic()), options)
    ended_by = "eof"
    try:
        async with asyncio.timeout(options.http_timeout) as timeout:
            state.timeout = timeout
            await _exchange(url, connection, entry, body, options.body_limit, state)
        ended_by = state.ended_by
    except TimeoutError:
        # A timeout while only counting bytes past the cap ends the rate's budget, not the fetch.
        if state.discarding:
            ended_by = "seconds"
        else:
            entry["failure"], ended_by = "generic_timeout_error", "failure"
    except NETWORK_ERRORS as error:
        # A peer that closes mid-message is an early EOF (probes/http_stream.py says which).
        ended_by = "failure"
        if not state.discarding:
            entry["failure"] = classify_failure(error)
    finally:
        await close_connection(connection)
    if entry["response"] is not None:
        response = entry["response"]
        content_type = _header(response["headers_list"], "content-type")
        response["body"] = decode_body(bytes(body), content_type)
        response["body_length"] = len(body)
        response["title"] = extract_title(bytes(body), content_type)
        entry["x_throughput"] = state.recorder.profile(time.monotonic(), ended_by)
    entry["t"] = round(time.monotonic() - started, 6)
    return entry


class _ExchangeState:
    __slots__ = ("recorder", "discarding", "ended_by", "timeout", "byte_budget", "seconds_budget")

    def __init__(self, recorder: ThroughputRecorder, options: ProbeOptions) -> None:
        self.recorder = recorder
        # True once the body reached its cap: what comes after is only counted.
        self.discarding = False
        self.ended_by = "eof"
        self.timeout: asyncio.Timeout | None = None
        self.byte_budget = max(options.throughput_bytes, options.body_limit)
        self.seconds_budget = options.throughput_seconds

    def start_discarding(self) -> None:
        self.discarding = True
        if self.timeout is not None:
            loop_time = asyncio.get_running_loop().time()
            remaining = self.seconds_budget - self.recorder.elapsed(time.monotonic())
            deadline = self.timeout.when()
            budget_end = loop_time + max(remaining, 0.0)
            self.timeout.reschedule(budget_end if deadline is None else min(deadline, budget_end))

    def budget_spent(self) -> str | None:
        if self.recorder.total >= self.byte_budget:
            return "bytes"
        if self.recorder.elapsed(time.monotonic()) >= self.seconds_budget:
            return "seconds"
        return None


async def _exchange(
    url: str,
    connection: Connection,
    entry: dict[str, Any],
    body: bytearray,
    body_limit: int,
    state: _ExchangeState,
) -> None:
    headers = [(name, value) for name, value in entry["request"]["headers_list"]]
    stream = ResponseStream(connection, "GET", request_target(url), headers)
    await stream.send()
    entry["response"] = _response_entry(await stream.head())
    while (data := await stream.chunk()) is not None:
        state.recorder.add(time.monotonic(), len(data))
        if not state.discarding:
            room = body_limit - len(body)
            body += data[:room]
            if len(data) > room:
                entry["response"]["body_is_truncated"] = True
                state.start_discarding()
        spent = state.budget_spent() if state.discarding else None
        if spent is not None:
            state.ended_by = spent
            return


def _response_entry(head: ResponseHead) -> dict[str, Any]:
    # The header names as the server spelled them, values as sent (latin-1, as h11's raw_items).
    headers_list = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in head.headers]
    headers: dict[str, str] = {}
    for key, value in headers_list:
        headers.setdefault(key, value)
    return {
        "code": head.status,
        "headers": headers,
        "headers_list": headers_list,
        "body": "",
        "body_is_truncated": False,
        "body_length": 0,
        "title": "",
    }
