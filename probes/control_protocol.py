"""The control protocol (oohelperd-shaped): request and answer typed once, for the probe and the helper."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from probes.dns import is_valid_hostname
from probes.endpoints import DEFAULT_PORTS, split_host_port
from probes.tcp import format_endpoint
from probes.throughput import ThroughputProfile

# The shapes follow OONI's internal/model/th.go (THRequest, THResponse) and
# docs/control-protocol.md; x_blockmon is our extension, which an oohelperd does not send.


class ControlRequest(TypedDict, total=False):
    """What the probe POSTs: the URL, its request headers, and the endpoints it resolved."""

    http_request: str
    http_request_headers: dict[str, list[str]]
    tcp_connect: list[str]
    x_quic_enabled: bool


# In an answer every field may be missing or null: oohelperd versions differ, and readers take
# `answer.get(field) or default`. control_shape_error checks each field against these types.


class DnsAnswer(TypedDict, total=False):
    failure: str | None
    addrs: list[str] | None


class TcpConnectAnswer(TypedDict, total=False):
    status: bool | None
    failure: str | None


class TlsHandshakeAnswer(TypedDict, total=False):
    server_name: str | None
    status: bool | None
    failure: str | None


class HttpRequestAnswer(TypedDict, total=False):
    body_length: int | None
    failure: str | None
    title: str | None
    headers: dict[str, str] | None
    status_code: int | None
    discovered_h3_endpoint: str | None


class IpInfo(TypedDict, total=False):
    # OONI's bitmask: IP_FLAG_* below.
    asn: int | None
    flags: int | None


class CertificateEntry(TypedDict, total=False):
    """One certificate as probes/certificates.py describes it (the probe's tls_handshakes too)."""

    subject: str | None
    issuer: str | None
    sans: list[str] | None
    not_before: str | None
    not_after: str | None
    sha256: str | None
    sha1: str | None
    parse_error: str | None


class BlockmonExtension(TypedDict, total=False):
    certificate_chains: dict[str, list[CertificateEntry]] | None
    body_sha256: str | None
    body_simhash: str | None
    body_is_truncated: bool | None
    # The helper's page read: bytes over time and rate (probes/throughput.py).
    throughput: ThroughputProfile | None


class ControlAnswer(TypedDict, total=False):
    """The helper's 200 answer: what the uncensored side saw, network failures as strings."""

    dns: DnsAnswer | None
    tcp_connect: dict[str, TcpConnectAnswer] | None
    tls_handshake: dict[str, TlsHandshakeAnswer] | None
    quic_handshake: dict[str, TlsHandshakeAnswer] | None
    http_request: HttpRequestAnswer | None
    http3_request: HttpRequestAnswer | None
    ip_info: dict[str, IpInfo] | None
    x_blockmon: BlockmonExtension | None


class ErrorAnswer(TypedDict):
    """The body of a 400, 401, 403 or 503 answer."""

    error: str


# As OONI's test helper (oohelperd) sets them: 1 = the probe's, 2 = the helper's. Rows stored
# before 0.2 have these two bits the other way round; the analysis reads only bit 8.
IP_FLAG_GIVEN_BY_PROBE = 1
IP_FLAG_RESOLVED_BY_HELPER = 2
IP_FLAG_BOGON = 4
IP_FLAG_VALID_FOR_DOMAIN = 8

RefusalStatus = Literal[400, 401, 403, 503]


class RequestRefused(Exception):
    """A control request the helper will not serve; carries the HTTP status and one-line reason."""

    def __init__(self, status: RefusalStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------- the request

# Request headers a probe may pass on; anything else (Cookie, Authorization, Host) is dropped so the
# helper cannot be used to replay credentials.
FORWARDED_HEADERS = ("User-Agent", "Accept", "Accept-Language")


@dataclass(frozen=True, slots=True)
class ParsedControlRequest:
    """A checked ControlRequest: the URL's parts, the probe's endpoints, its forwarded headers."""

    url: str
    scheme: str
    host: str
    port: int
    endpoints: tuple[str, ...]
    headers: dict[str, str]


def build_control_request(url: str, addresses: list[str], headers: Mapping[str, str]) -> ControlRequest:
    """The probe's request: its resolved IPs become "ip:port" on the URL's port."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    return {
        "http_request": url,
        "http_request_headers": {key: [value] for key, value in headers.items()},
        "tcp_connect": [format_endpoint(ip, port) for ip in addresses],
        "x_quic_enabled": False,
    }


def encode_control_request(url: str, addresses: list[str], headers: Mapping[str, str]) -> bytes:
    """json.dumps(build_control_request(...)).encode(), byte for byte, as the probe POSTs it.

    The probe sends the same headers every time: their JSON is made once, not at each request.
    """
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    endpoints = [format_endpoint(ip, port) for ip in addresses]
    # The keys in build_control_request's order, with json.dumps' default separators.
    return (f'{{"http_request": {json.dumps(url)}, '
            f'"http_request_headers": {_headers_json(tuple(headers.items()))}, '
            f'"tcp_connect": {json.dumps(endpoints)}, "x_quic_enabled": false}}').encode()


@functools.lru_cache(maxsize=16)
def _headers_json(items: tuple[tuple[str, str], ...]) -> str:
    return json.dumps({key: [value] for key, value in items})


def parse_control_request(payload: object, max_addresses: int) -> ParsedControlRequest:
    """Check the probe's request; a bad one raises RequestRefused(400) naming the field."""
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
        raise RequestRefused(400, f"http_request: only http and https URLs, not {scheme or 'none'!r}")
    hostname = parts.hostname  # parsed from the netloc at each access
    if not hostname:
        raise RequestRefused(400, f"http_request: no host in {url[:200]!r}")
    if not is_valid_hostname(hostname):
        raise RequestRefused(400, f"http_request: host {hostname[:200]!r} is not a valid DNS name")
    endpoints_field = payload.get("tcp_connect", [])
    if not isinstance(endpoints_field, list) or not _all_strings(endpoints_field):
        raise RequestRefused(400, 'tcp_connect: expected a list of "ip:port" strings')
    if len(endpoints_field) > max_addresses:
        raise RequestRefused(
            400, f"tcp_connect: at most {max_addresses} endpoints, got {len(endpoints_field)}"
        )
    endpoints = tuple(dict.fromkeys([_parse_endpoint(e) for e in endpoints_field]))
    headers_field = payload.get("http_request_headers", {})
    if not isinstance(headers_field, dict):
        raise RequestRefused(400, "http_request_headers: expected an object of name -> [values]")
    return ParsedControlRequest(
        url, scheme, hostname, port or DEFAULT_PORTS[scheme], endpoints, _forwarded(headers_field)
    )


def _all_strings(values: list[Any]) -> bool:
    # A loop, not all() over a generator: this runs at every request the helper serves.
    for value in values:
        if not isinstance(value, str):
            return False
    return True


_FORWARDED_BY_LOWER = {name.lower(): name for name in FORWARDED_HEADERS}


def _forwarded(headers_field: dict[Any, Any]) -> dict[str, str]:
    # One pass over the probe's headers: of a name sent twice (in two cases) the last one counts;
    # the result lists them in FORWARDED_HEADERS' order.
    found: dict[str, str] = {}
    for key, values in headers_field.items():
        name = _FORWARDED_BY_LOWER.get(key.lower())
        if name is not None and isinstance(values, list) and values and isinstance(values[0], str):
            found[name] = values[0][:1024]
    return {name: found[name] for name in FORWARDED_HEADERS if name in found}


# Dotted-quad IPv4 exactly as ipaddress reads and writes it (ASCII digits, no leading zero, at
# most 255): such an address is its own canonical form, without building an IPv4Address.
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _parse_endpoint(text: str) -> str:
    try:
        host, port = split_host_port(text)
    except ValueError:
        raise RequestRefused(400, f"tcp_connect: {text[:100]!r} has no valid port") from None
    if _CANONICAL_IPV4.fullmatch(host):
        return f"{host}:{port}"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise RequestRefused(400, f'tcp_connect: {text[:100]!r} is not "ip:port"') from None
    return format_endpoint(str(ip), port)


# ---------------------------------------------------------------- the answer


class ControlAnswerError(ValueError):
    """A helper's answer the probe cannot use: not JSON, not an object, or a field of another type."""


def parse_control_answer(body: bytes) -> ControlAnswer:
    """The helper's answer, checked against ControlAnswer; ControlAnswerError names what is wrong."""
    try:
        answer = _decode_json(body)
    except ValueError as error:
        raise ControlAnswerError(f"not JSON ({error})") from None
    if not isinstance(answer, dict):
        raise ControlAnswerError("not a JSON object")
    wrong = control_shape_error(answer)
    if wrong is not None:
        # The analysis reads these fields as the protocol types them; another shape is no answer.
        raise ControlAnswerError(f"{wrong}: not of the protocol's type")
    return typing.cast(ControlAnswer, answer)


# json.loads(bytes) guesses the encoding and skips whitespace around the value in Python code; an
# answer as a helper writes it (UTF-8, `{"` first, nothing after) goes straight to the C scanner,
# configured as json.loads' own decoder. Anything else, and any error, is json.loads' to read or word.
# (typeshed types make_scanner's argument as the scanner itself, not the decoder it reads.)
_scan_json: Callable[[str, int], tuple[object, int]] = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _decode_json(body: bytes) -> object:
    if body.startswith(b'{"'):  # so neither a byte-order mark nor UTF-16/32: json.loads reads UTF-8
        try:
            text = body.decode("utf-8", "surrogatepass")
            value, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return value
    return json.loads(body)


def control_shape_error(answer: Mapping[str, object]) -> str | None:
    """The path of the first field of an answer that has not its ControlAnswer type, or None.

    Fields the protocol does not define are let through (another helper may add its own).
    """
    # Most answers conform: a check generated once from the types says so cheaply; only a failing
    # answer is walked again, type-driven, to name the field.
    if _answer_conforms(answer):
        return None
    return _typed_dict_error(answer, ControlAnswer, "")


# ---- the fast check: one straight-line function generated from ControlAnswer's types at import.
# No call, generator or closure per field (the generic recursive checkers were ~2.5% of the
# engine's CPU). It compares exact types (`type(x) is str`): what json.loads builds. A subclass
# (a bool for an int among them) fails it, and the walk below then gives the exact verdict, so
# it need only never accept what the walk refuses.


def _generated_check(kind: type) -> Callable[[object], bool]:
    lines = ["def check(value):", *_check_lines(kind, "value", 1, itertools.count()), "    return True"]
    namespace: dict[str, Any] = {"_MISSING": _MISSING}
    exec("\n".join(lines), namespace)  # the source is ours, built from type hints
    return typing.cast(Callable[[object], bool], namespace["check"])


_MISSING = object()


def _check_lines(hint: Any, name: str, depth: int, names: itertools.count[int]) -> list[str]:
    """Statements that `return False` unless the value in variable `name` is of type `hint`."""
    pad = "    " * depth
    choices = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) else ()
    if type(None) in choices:
        (hint,) = (choice for choice in choices if choice is not type(None))
        return [f"{pad}if {name} is not None:", *_check_lines(hint, name, depth + 1, names)]
    origin = typing.get_origin(hint)
    if typing.is_typeddict(hint):
        return [f"{pad}if type({name}) is not dict: return False",
                *(line for field, field_hint in _field_types(hint).items()
                  for line in _field_lines(field, field_hint, name, depth, names))]
    if origin is list:
        item = f"v{next(names)}"
        return [f"{pad}if type({name}) is not list: return False",
                f"{pad}for {item} in {name}:", *_check_lines(typing.get_args(hint)[0], item, depth + 1, names)]
    if origin is dict:
        key, item = f"k{next(names)}", f"v{next(names)}"
        return [f"{pad}if type({name}) is not dict: return False",
                f"{pad}for {key}, {item} in {name}.items():",
                f"{pad}    if type({key}) is not str: return False",
                *_check_lines(typing.get_args(hint)[1], item, depth + 1, names)]
    if hint in (str, int, float, bool):
        return [f"{pad}if type({name}) is not {hint.__name__}: return False"]
    raise TypeError(f"no generated check for {hint!r}")


def _field_lines(field: str, hint: Any, parent: str, depth: int, names: itertools.count[int]) -> list[str]:
    pad = "    " * depth
    item = f"v{next(names)}"
    # A missing field is let through: an optional one reads as None, any other one as _MISSING.
    optional = type(None) in typing.get_args(hint)
    if optional:
        return [f"{pad}{item} = {parent}.get({field!r})", *_check_lines(hint, item, depth, names)]
    return [f"{pad}{item} = {parent}.get({field!r}, _MISSING)",
            f"{pad}if {item} is not _MISSING:", *_check_lines(hint, item, depth + 1, names)]


@functools.cache
def _field_types(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


_answer_conforms = _generated_check(ControlAnswer)


def _typed_dict_error(value: Mapping[str, object], kind: type, path: str) -> str | None:
    for name, hint in _field_types(kind).items():
        if name in value:
            where = f"{path}.{name}" if path else name
            wrong = _value_error(value[name], hint, where)
            if wrong is not None:
                return wrong
    return None


def _value_error(value: object, hint: Any, path: str) -> str | None:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        choices = typing.get_args(hint)
        if value is None and type(None) in choices:
            return None
        (hint,) = (choice for choice in choices if choice is not type(None))
        origin = typing.get_origin(hint)
    if typing.is_typeddict(hint):
        return _typed_dict_error(value, hint, path) if isinstance(value, dict) else path
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            return path
        return next((e for e in (_value_error(v, item, path) for v in value) if e), None)
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            return path
        return next((e for e in (_value_error(v, item, f"{path}.{k}") for k, v in value.items()) if e), None)
    # bool is an int to isinstance, but true is no status code.
    if hint is int and isinstance(value, bool):
        return path
    return None if isinstance(value, hint) else path
