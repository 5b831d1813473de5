"""Read the probe's side of a measurement (test_keys) into plain observations; pure."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from probes.analysis_compare import format_endpoint, is_ipv6, split_endpoint
from probes.measurement_types import (
    DnsQuery,
    HttpResponse,
    HttpTransaction,
    SniRetry,
    TcpConnect,
    TlsHandshake,
)
from probes.vocabulary import Failure

_UNREACHABLE = frozenset({"host_unreachable", "network_unreachable"})


@dataclass(frozen=True, slots=True)
class Observations:
    """The probe's side, read once from test_keys."""

    hostname: str | None
    scheme: str | None
    addresses: list[str]
    dns_failure: Failure | None
    tcp_connect: list[TcpConnect]
    tls_handshakes: list[TlsHandshake]
    final_request: HttpTransaction | None
    http_failure: Failure | None

    all_hops_https: bool = False
    # The AS of each answered address, when the probe annotated its answers (OONI's `asn`).
    answer_asns: dict[str, int] = field(default_factory=dict)

    @property
    def page(self) -> HttpResponse | None:
        """The final response, when the probe got one without failure."""
        if self.final_request is None or self.http_failure is not None:
            return None
        response = self.final_request.get("response")
        return response if isinstance(response, dict) and response.get("code") else None


# Exact types: a scalar item is kept without a call (most of an entry's values are scalars).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); 10x cheaper than copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else copy_json(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else copy_json(item) for item in value]
    if kind in _SCALARS:
        return value
    return _copy_other(value)


def _copy_other(value: Any) -> Any:
    # Subclasses of dict and list become plain ones; other objects are deep-copied.
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return copy.deepcopy(value) if not isinstance(value, str | int | float | bool | None) else value


def _own_steps(entries: Any) -> list[Any]:
    # Redirect hops' DNS/TCP/TLS entries are recorded too (x_redirect_hop); the verdict compares
    # the measured URL's own steps with the control, which saw only those.
    return [e for e in entries or [] if isinstance(e, dict) and not e.get("x_redirect_hop")]


def redirect_hop_entries(entries: Any) -> list[Any]:
    """Copies of the redirect hops' entries, which the verdict passes on unjudged."""
    return [
        copy_json(e) for e in entries or [] if isinstance(e, dict) and e.get("x_redirect_hop")
    ]


# test_keys may be a stored row or OONI's own data, so it is read as a plain map and each entry is
# checked to be a dict; the entries' types then say which keys the analysis reads.
def read_observations(test_keys: Mapping[str, Any]) -> Observations:
    requests = _requests(test_keys)
    queries: list[DnsQuery] = _own_steps(test_keys.get("queries"))
    first_url = request_url(requests[-1]) if requests else ""
    parts = urlsplit(first_url) if first_url else None
    hostname = parts.hostname if parts else None
    if hostname is None and queries:
        hostname = queries[0].get("hostname")
    addresses: list[str] = []
    answer_asns: dict[str, int] = {}
    for query in queries:
        for answer in query.get("answers") or []:
            address = answer.get("ipv4") or answer.get("ipv6")
            if address and address not in addresses:
                addresses.append(address)
            asn = answer.get("asn")
            if address and isinstance(asn, int) and not isinstance(asn, bool) and asn > 0:
                answer_asns[address] = asn
    dns_failure = None
    if not addresses:
        failures = [q.get("failure") for q in queries if q.get("failure")]
        a_failures = [
            q.get("failure") for q in queries if q.get("failure") and q.get("query_type") == "A"
        ]
        dns_failure = (a_failures or failures or [None])[0]
    retry_names = {
        str(entry.get("server_name")) for entry in test_keys.get("sni_differential") or []
    }
    handshakes: list[TlsHandshake] = [
        h
        for h in _own_steps(test_keys.get("tls_handshakes"))
        if not is_sni_retry(h, hostname, retry_names)
    ]
    tcp: list[TcpConnect] = _own_steps(test_keys.get("tcp_connect"))
    final_request = requests[0] if requests else None
    http_failure = final_request.get("failure") if final_request else None
    if final_request is None and not dns_failure:
        http_failure = first_connection_failure(tcp, handshakes)
    return Observations(
        hostname=hostname,
        scheme=parts.scheme if parts else None,
        addresses=addresses,
        dns_failure=dns_failure,
        tcp_connect=tcp,
        tls_handshakes=handshakes,
        final_request=final_request,
        http_failure=http_failure,
        all_hops_https=bool(requests)
        and all(_is_https(request_url(r)) for r in requests),
        answer_asns=answer_asns,
    )


def _is_https(url: str) -> bool:
    try:
        return urlsplit(url).scheme == "https"
    except ValueError:
        return False  # a malformed redirect target, recorded as the server sent it


def _requests(test_keys: Mapping[str, Any]) -> list[HttpTransaction]:
    requests: list[Any] = [r for r in test_keys.get("requests") or [] if isinstance(r, dict)]
    return requests


FailedHop = (
    tuple[Literal["dns"], DnsQuery]
    | tuple[Literal["tcp"], TcpConnect]
    | tuple[Literal["tls"], TlsHandshake]
)


def failed_hop_step(test_keys: Mapping[str, Any]) -> FailedHop | None:
    """("dns" | "tcp" | "tls", entry) when the last request is a redirect hop that failed before
    its HTTP exchange, with the hop's own failed entry; None otherwise (the HTTP step failed)."""
    requests = _requests(test_keys)
    final = requests[0] if requests else None
    if final is None or len(requests) < 2 or final.get("response") or not final.get("failure"):
        return None
    hop, failure, address = len(requests) - 1, final.get("failure"), final.get("address")

    def entries(key: str) -> list[Any]:
        return [
            e for e in test_keys.get(key) or [] if isinstance(e, dict) and e.get("x_redirect_hop") == hop
        ]

    handshake: TlsHandshake
    for handshake in entries("tls_handshakes"):
        if handshake.get("failure") == failure and handshake.get("address") == address:
            return "tls", handshake
    connect: TcpConnect
    for connect in entries("tcp_connect"):
        if _status(connect).get("failure") == failure and tcp_endpoint(connect) == address:
            return "tcp", connect
    query: DnsQuery
    for query in entries("queries"):
        if query.get("failure") == failure and not address:
            return "dns", query
    return None


def _status(entry: TcpConnect) -> Mapping[str, Any]:
    # A foreign entry may lack its status; read as the missing status it is.
    return entry.get("status") or {}


def request_url(request: HttpTransaction) -> str:
    # `or {}`: a foreign entry may lack its request.
    http_request: Mapping[str, Any] = request.get("request") or {}
    return str(http_request.get("url") or "")


def is_sni_retry(handshake: Mapping[str, Any], hostname: str | None, retry_names: set[str]) -> bool:
    # `sni_retry` is read too: measurements from before the `x_` prefix, still in stores.
    if handshake.get("x_sni_retry") or handshake.get("sni_retry"):
        return True
    name = handshake.get("server_name")
    # A retry carries a neutral SNI or none; the real handshakes carry a hostname of the URL chain.
    return hostname is not None and (not name or (name in retry_names and name != hostname))


def first_connection_failure(
    tcp: list[TcpConnect], handshakes: list[TlsHandshake]
) -> Failure | None:
    if tcp and not any(_status(e).get("success") for e in tcp):
        failure: Failure | None = _status(tcp[0]).get("failure")
        return failure
    if handshakes and not any(h.get("failure") is None for h in handshakes):
        return handshakes[0].get("failure")
    return None


def tcp_endpoint(entry: TcpConnect) -> str:
    return format_endpoint(str(entry.get("ip")), int(entry.get("port") or 0))


def classify_tcp_blocking(
    tcp: list[TcpConnect], control_tcp: Mapping[str, Any]
) -> list[TcpConnect]:
    """Copies of the probe's TCP entries with status.blocked: failed here while the control connected."""
    judged = []
    for original in tcp:
        entry: TcpConnect = copy_json(original)
        # A foreign entry may lack its status: it gets one holding only `blocked`.
        status = entry.setdefault("status", {})  # type: ignore[typeddict-item]
        control_status = control_tcp.get(tcp_endpoint(entry))
        if status.get("success"):
            blocked: bool | None = False
        elif not isinstance(control_status, dict):
            blocked = None
        elif is_ipv6(str(entry.get("ip"))) and status.get("failure") in _UNREACHABLE:
            # No IPv6 route at the vantage is the vantage's limit, not a censor's act.
            blocked = None
        else:
            blocked = bool(control_status.get("status"))
        status["blocked"] = blocked
        judged.append(entry)
    return judged


def detect_sni_filtering(sni_differential: list[SniRetry]) -> bool | None:
    """True when a neutral SNI (or none) got through; False when the retries failed too."""
    retries = [entry for entry in sni_differential if isinstance(entry, dict)]
    if not retries:
        return None
    return any(entry.get("failure") is None for entry in retries)


def verified_addresses(handshakes: list[TlsHandshake], hostname: str | None) -> list[str]:
    addresses = []
    for handshake in handshakes:
        if handshake.get("failure") is None and not handshake.get("no_tls_verify"):
            if hostname is None or handshake.get("server_name") in (hostname, None):
                addresses.append(split_endpoint(str(handshake.get("address")))[0])
    return addresses


def https_page_verified(observed: Observations) -> bool:
    """The probe fetched its final page over https with a certificate that verified.

    Redirect hops record no handshake of their own; their fetch verifies the certificate (a
    failure would be the request's failure), so a successful https hop without a handshake entry
    counts as verified. A recorded handshake for the same address must have verified.
    """
    if observed.page is None or observed.final_request is None:
        return False
    url = urlsplit(request_url(observed.final_request))
    if url.scheme != "https":
        return False
    address = observed.final_request.get("address")
    matching = [
        h
        for h in observed.tls_handshakes
        if (address and h.get("address") == address)
        or (not address and h.get("server_name") == url.hostname)
    ]
    if not matching:
        return True
    return any(h.get("failure") is None and not h.get("no_tls_verify") for h in matching)
