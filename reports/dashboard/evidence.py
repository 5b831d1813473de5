"""Pure: a measurement's probe and control observations side by side, step by step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reports.formatting import format_rate


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list in a measurement; anything else (a probe's bug) is left out."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class ObservationPair:
    step: str  # DNS, TCP, TLS, HTTP, and Rate when the throughput was measured
    probe: str
    control: str


def _dns_probe(test_keys: Mapping[str, Any]) -> str:
    queries = _objects(test_keys.get("queries"))
    failure = test_keys.get("dns_experiment_failure")
    addresses = [str(answer.get("ipv4") or answer.get("ipv6")) for query in queries
                 for answer in _objects(query.get("answers")) if answer.get("ipv4") or
                 answer.get("ipv6")]
    if failure:
        return f"failed: {failure}"
    return ", ".join(dict.fromkeys(addresses)) or "no answer recorded"


def _tcp_probe(test_keys: Mapping[str, Any]) -> str:
    entries = _objects(test_keys.get("tcp_connect"))
    parts = [f"{entry.get('ip')}:{entry.get('port')} "
             f"{_object(entry.get('status')).get('failure') or 'connected'}" for entry in entries]
    return "; ".join(parts) or "not tried"


def _tls_probe(test_keys: Mapping[str, Any]) -> str:
    parts = []
    for handshake in _objects(test_keys.get("tls_handshakes")):
        chain = _objects(handshake.get("certificate_chain"))
        issuer = f", issuer {chain[0].get('issuer')}" if chain and chain[0].get("issuer") else ""
        # A retry without SNI has no server name: say so rather than print "None".
        parts.append(f"{handshake.get('server_name') or '(no SNI)'}@{handshake.get('address')}: "
                     f"{handshake.get('failure') or 'ok'}{issuer}")
    for retry in _objects(test_keys.get("sni_differential")):
        parts.append(f"retry SNI {retry.get('server_name') or '(none)'}: "
                     f"{retry.get('failure') or 'ok'}")
    return "; ".join(parts) or "not tried"


def _http_probe(test_keys: Mapping[str, Any]) -> str:
    requests = _objects(test_keys.get("requests"))
    failure = test_keys.get("http_experiment_failure")
    if failure:
        return f"failed: {failure}"
    if not requests:
        return "not tried"
    response = _object(requests[0].get("response"))
    return _http_words(response.get("code"), response.get("body_length"), response.get("title"))


def _http_words(status: Any, body_length: Any, title: Any) -> str:
    parts = [f"status {status}"]
    if body_length is not None:
        parts.append(f"{body_length} bytes")
    if title:
        parts.append(f"title {title!r}")
    return ", ".join(parts)


def _control_parts(control: Mapping[str, Any]) -> dict[str, str]:
    dns = _object(control.get("dns"))
    tcp = {address: _object(result) for address, result in
           _object(control.get("tcp_connect")).items()}
    tls = {address: _object(result) for address, result in
           _object(control.get("tls_handshake")).items()}
    http = _object(control.get("http_request"))
    return {
        "DNS": f"failed: {dns['failure']}" if dns.get("failure") else
        ", ".join(str(address) for address in _list(dns.get("addrs"))) or "-",
        "TCP": "; ".join(f"{address} {'connected' if result.get('status') else result.get('failure')}"
                         for address, result in tcp.items()) or "-",
        "TLS": "; ".join(f"{result.get('server_name') or '(no SNI)'}@{address}: "
                         f"{'ok' if result.get('status') else result.get('failure')}"
                         for address, result in tls.items()) or "-",
        "HTTP": f"failed: {http['failure']}" if http.get("failure") else
        (_http_words(http.get("status_code"), http.get("body_length"), http.get("title"))
         if http else "-"),
    }


def compare_observations(measurement: Mapping[str, Any]) -> list[ObservationPair]:
    """What the probe saw next to what the control helper saw, for DNS, TCP, TLS and HTTP."""
    test_keys = _object(measurement.get("test_keys"))
    control = _control_parts(_object(test_keys.get("control")))
    if test_keys.get("control_failure"):
        control = {step: f"control failed: {test_keys['control_failure']}" for step in control}
    probe = {"DNS": _dns_probe(test_keys), "TCP": _tcp_probe(test_keys),
             "TLS": _tls_probe(test_keys), "HTTP": _http_probe(test_keys)}
    pairs = [ObservationPair(step, probe[step], control[step]) for step in probe]
    rates = _rate_pair(_object(test_keys.get("x_throughput")))
    return pairs + ([rates] if rates else [])


def _rate_pair(throughput: Mapping[str, Any]) -> ObservationPair | None:
    """The rates of a page whose throughput was measured (docs/outcomes.md, "Throttling")."""
    probe, control = _object(throughput.get("probe")), _object(throughput.get("control"))
    if not probe and not control:
        return None
    baselines = [_object(entry.get("profile")).get("rate")
                 for entry in _objects(throughput.get("baseline"))]
    fastest = max((rate for rate in baselines if isinstance(rate, int | float)), default=None)
    baseline = f"; same-network baseline {format_rate(fastest)}" if fastest is not None else ""
    return ObservationPair("Rate", f"{_rate_words(probe)}{baseline}", _rate_words(control))


def _rate_words(profile: Mapping[str, Any]) -> str:
    rate = profile.get("rate")
    if not isinstance(rate, int | float):
        return "-"
    return f"{format_rate(rate)} over {profile.get('bytes')} bytes"
