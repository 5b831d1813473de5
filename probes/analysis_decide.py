"""Decide blocking and blocking_method from the evidence the analysis gathered; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probes.analysis_compare import DnsComparison, HttpComparison, is_ipv6
from probes.analysis_observe import FailedHop, Observations, https_page_verified, tcp_endpoint
from probes.analysis_throttle import judge_throttling
from probes.fingerprints_match import FingerprintDB, Match, match_interception_ca
from probes.measurement_types import CertificateDescription, TcpConnect, TlsHandshake
from probes.vocabulary import Blocking, BlockingMethod

# OONI Web Connectivity's `blocking` value for each of our methods; dns.blockpage is a DNS
# redirection even though a page is the evidence.
BLOCKING_OF_METHOD: dict[str, Blocking] = {
    "dns.nxdomain": "dns",
    "dns.bogon": "dns",
    "dns.blockpage": "dns",
    "dns.inconsistent": "dns",
    "dns.timeout": "dns",
    "dns.servfail": "dns",
    "tcp.reset": "tcp_ip",
    "tcp.timeout": "tcp_ip",
    "tls.reset": "http-failure",
    "tls.timeout": "http-failure",
    "tls.mitm": "http-failure",
    "http.reset": "http-failure",
    "http.timeout": "http-failure",
    "http.blockpage": "http-diff",
    "http.diff": "http-diff",
    # A page that crawls at a fraction of the control's rate (docs/outcomes.md, "Throttling").
    "tls.throttled": "http-failure",
    "http.throttled": "http-failure",
}

_DNS_METHOD: dict[str, BlockingMethod] = {
    "dns_nxdomain_error": "dns.nxdomain",
    "generic_timeout_error": "dns.timeout",
    "dns_servfail_error": "dns.servfail",
    # REFUSED is a server failure the censor's resolver chose; same family as SERVFAIL.
    "dns_refused_error": "dns.servfail",
}
_TCP_METHOD: dict[str, BlockingMethod] = {
    "connection_refused": "tcp.reset",
    "connection_reset": "tcp.reset",
    "generic_timeout_error": "tcp.timeout",
    # Null-routing shows up as unreachable or as a silent drop: both are the IP being dropped.
    "host_unreachable": "tcp.timeout",
    "network_unreachable": "tcp.timeout",
}
_TLS_METHOD: dict[str, BlockingMethod] = {
    "connection_reset": "tls.reset",
    "eof_error": "tls.reset",
    # An injected TLS alert surfaces as a failed handshake.
    "ssl_failed_handshake": "tls.reset",
    "generic_timeout_error": "tls.timeout",
    "ssl_unknown_authority": "tls.mitm",
    "ssl_invalid_hostname": "tls.mitm",
    "ssl_invalid_certificate": "tls.mitm",
}
_HTTP_METHOD: dict[str, BlockingMethod] = {
    "connection_reset": "http.reset",
    "eof_error": "http.reset",
    # Garbage injected in place of a response: the connection was tampered with mid-stream.
    "http_invalid_response": "http.reset",
    "generic_timeout_error": "http.timeout",
}


@dataclass(slots=True)
class Evidence:
    """Everything the decision needs, computed once."""

    observed: Observations
    control: dict[str, Any]
    control_http: dict[str, Any]
    dns: DnsComparison
    http: HttpComparison | None
    page_match: Match | None
    dns_match: Match | None
    sni_filtering: bool | None
    tcp_judged: list[TcpConnect]
    database: FingerprintDB
    # The step of a redirect hop that failed before its HTTP exchange, and its entry.
    failed_hop: FailedHop | None = None
    # test_keys.x_throughput: the rates of the probe, the control and the baselines.
    throughput: Mapping[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    blocking: Blocking | None
    accessible: bool | None
    method: BlockingMethod | None = None
    fingerprint: Match | None = None


def _blocked(method: BlockingMethod, fingerprint: Match | None = None) -> Decision:
    return Decision(BLOCKING_OF_METHOD[method], False, method, fingerprint)


_ACCESSIBLE = Decision(False, True)


def decide_without_control(evidence: Evidence) -> Decision:
    observed = evidence.observed
    if https_page_verified(observed):
        # A certificate that verifies is the site's own word: no censor could have forged it.
        evidence.notes.append("accessible: https page with a valid certificate")
        return _ACCESSIBLE
    match = evidence.page_match or evidence.dns_match
    if match is not None:
        evidence.notes.append(f"unconfirmed: fingerprint {match.id} matched without a control")
    if evidence.dns.bogon_addresses:
        evidence.notes.append(f"unconfirmed: bogon answer {', '.join(evidence.dns.bogon_addresses)}")
    return Decision(None, None, None, match)


def decide_with_control(evidence: Evidence) -> Decision:
    observed, dns = evidence.observed, evidence.dns
    # Tampering evidence that stands even if the site is also down.
    if evidence.dns_match is not None:
        evidence.notes.append(f"dns: {evidence.dns_match.evidence}")
        return _blocked("dns.blockpage", evidence.dns_match)
    if dns.bogon_addresses:
        evidence.notes.append(f"dns: bogon answer {', '.join(dns.bogon_addresses)}")
        if evidence.page_match is not None:
            return _blocked("dns.blockpage", evidence.page_match)
        return _blocked("dns.bogon")
    ghost = _decide_ghost_dns(evidence)
    if ghost is not None:
        return ghost
    control_http_failure = (
        evidence.control_http.get("failure") if evidence.control_http else "no_control_http"
    )
    if control_http_failure is not None:
        return _decide_control_failed(evidence, str(control_http_failure))
    if observed.dns_failure is not None:
        method = _DNS_METHOD.get(observed.dns_failure, "dns.inconsistent")
        evidence.notes.append(f"dns: {observed.dns_failure} while the control resolved the host")
        return _blocked(method)
    if dns.consistency == "inconsistent":
        if evidence.page_match is not None:
            evidence.notes.append(f"dns: {dns.reason}; the page there is a blockpage")
            return _blocked("dns.blockpage", evidence.page_match)
        if evidence.http is not None and evidence.http.same_page:
            evidence.notes.append(f"dns: {dns.reason}, but the page matches the control's")
            return _ACCESSIBLE
        evidence.notes.append(f"dns: {dns.reason}")
        return _blocked("dns.inconsistent")
    if observed.page is None:
        return _decide_connection_failure(evidence)
    mitm = _detect_mitm_on_success(evidence)
    if mitm is not None:
        return mitm
    throttled = _decide_throttling(evidence)
    if throttled is not None:
        return throttled
    # No censor can alter a page (or a redirect) that came over https with a certificate that
    # verifies for the host: a different page is the site's own answer (geo-restriction, a WAF
    # that treats the control's datacenter address as a bot).
    verified = observed.all_hops_https and https_page_verified(observed)
    if evidence.page_match is not None and not verified:
        evidence.notes.append(f"http: {evidence.page_match.evidence}")
        return _blocked("http.blockpage", evidence.page_match)
    if evidence.http is not None and evidence.http.same_page:
        return _ACCESSIBLE
    if verified:
        what = f"; it matches {evidence.page_match.id}" if evidence.page_match else ""
        evidence.notes.append(
            f"http: another page than the control's, over verified https (the site's own){what}"
        )
        return _ACCESSIBLE
    evidence.notes.append("http: the page differs from the control's")
    return _blocked("http.diff")


# The control's resolver says the name does not exist (legacy helpers: dns_name_error).
_NAME_DOES_NOT_EXIST = frozenset({"dns_nxdomain_error", "dns_name_error"})


def _decide_ghost_dns(evidence: Evidence) -> Decision | None:
    """The probe's resolver answered for a name the control found does not exist (OONI's "ghost
    DNS"): the answer is the censor's, whatever the page behind it says, unless that page came over
    https with a certificate valid for the host."""
    observed = evidence.observed
    control_dns_failure = (evidence.control.get("dns") or {}).get("failure")
    if control_dns_failure not in _NAME_DOES_NOT_EXIST or not observed.addresses:
        return None
    if https_page_verified(observed):
        return None
    evidence.notes.append(
        f"dns: the resolver answered {observed.addresses[0]} for a name the control found does"
        f" not exist ({control_dns_failure}): ghost DNS"
    )
    if evidence.page_match is not None:
        return _blocked("dns.blockpage", evidence.page_match)
    return _blocked("dns.inconsistent")


def _decide_control_failed(evidence: Evidence, control_http_failure: str) -> Decision:
    observed = evidence.observed
    connected = any((entry.get("status") or {}).get("success") for entry in observed.tcp_connect)
    if observed.page is None and observed.http_failure is None and connected:
        # The probe connected, then recorded neither a page nor a failure: nothing says "down".
        evidence.notes.append(
            f"unknown: the probe connected but recorded no HTTP exchange; the control failed"
            f" ({control_http_failure})"
        )
        return Decision(None, None)
    if observed.page is None:
        evidence.notes.append(f"down: the control failed too ({control_http_failure})")
        return Decision(False, False)
    if evidence.page_match is not None:
        method: BlockingMethod = (
            "dns.blockpage" if evidence.dns.consistency == "inconsistent" else "http.blockpage"
        )
        evidence.notes.append(
            f"http: {evidence.page_match.evidence} (the control failed: {control_http_failure})"
        )
        return _blocked(method, evidence.page_match)
    if https_page_verified(observed) or evidence.dns.consistency == "consistent":
        evidence.notes.append(
            f"accessible: the probe fetched the page the control could not ({control_http_failure})"
        )
        return _ACCESSIBLE
    evidence.notes.append(
        f"unknown: the control failed ({control_http_failure}) and the probe's page is unverified"
    )
    return Decision(None, None)


def _decide_connection_failure(evidence: Evidence) -> Decision:
    observed = evidence.observed
    tcp = evidence.tcp_judged
    if tcp and not any((entry.get("status") or {}).get("success") for entry in tcp):
        if all(_no_ipv6_route(entry) for entry in tcp):
            # Every address is IPv6 and the vantage has no route there: its limit, not a censor's.
            evidence.notes.append(
                f"unknown: no IPv6 route at the vantage to {tcp_endpoint(tcp[0])}; the control connected"
            )
            return Decision(None, None)
        first = _first_blocked_or_failed(tcp)
        failure = str((first.get("status") or {}).get("failure"))
        evidence.notes.append(f"tcp: {failure} to {tcp_endpoint(first)} while the control connected")
        method = _TCP_METHOD.get(failure)
        return _blocked(method) if method else Decision("tcp_ip", False)
    tls = _decide_tls_failure(evidence)
    if tls is not None:
        return tls
    failure = observed.http_failure or "unknown_failure"
    return _method_for_late_failure(evidence, failure)


def _no_ipv6_route(entry: TcpConnect) -> bool:
    status: Mapping[str, Any] = entry.get("status") or {}
    return (
        status.get("blocked") is None
        and status.get("failure") in ("host_unreachable", "network_unreachable")
        and is_ipv6(str(entry.get("ip")))
    )


def _first_blocked_or_failed(tcp: list[TcpConnect]) -> TcpConnect:
    for entry in tcp:
        if (entry.get("status") or {}).get("blocked"):
            return entry
    return tcp[0]


def _decide_tls_failure(evidence: Evidence) -> Decision | None:
    observed = evidence.observed
    handshakes = observed.tls_handshakes
    if not handshakes or any(h.get("failure") is None for h in handshakes):
        return None
    handshake = _handshake_for_request(observed) or handshakes[0]
    failure = str(handshake.get("failure"))
    method = _TLS_METHOD.get(failure)
    if method is None:
        return None
    return _tls_decision(evidence, method, failure, handshake)


def _handshake_for_request(observed: Observations) -> TlsHandshake | None:
    address = observed.final_request.get("address") if observed.final_request else None
    for handshake in observed.tls_handshakes:
        if address and handshake.get("address") == address:
            return handshake
    return None


# `handshake` is a recorded entry, or only the address of a request whose handshake was not.
def _tls_decision(
    evidence: Evidence, method: BlockingMethod, failure: str, handshake: Mapping[str, Any]
) -> Decision:
    endpoint = str(handshake.get("address"))
    control_tls = (evidence.control.get("tls_handshake") or {}).get(endpoint) or {}
    # The control fetched the page elsewhere (another server of the pool) but failed here too:
    # this server's own fault (an expired or wrong certificate, a broken TLS stack).
    control_failed_too = bool(control_tls) and not control_tls.get("status")
    if method == "tls.mitm":
        chain = _probe_chain(evidence.observed, handshake)
        match = match_interception_ca(evidence.database, chain) if chain else None
        issuer = chain[0].get("issuer") if chain else None
        if control_failed_too:
            evidence.notes.append(
                f"tls: the control's handshake with {endpoint} failed too"
                f" ({control_tls.get('failure')})"
            )
            if match is None:
                evidence.notes.append(f"unknown: {failure} at {endpoint}, issuer {issuer or 'unknown'}")
                return Decision(None, None)
        evidence.notes.append(
            f"tls: {failure} at {endpoint}; issuer {issuer or 'unknown'}"
            + (
                f"; known interception CA {match.id} (by {match.matched_by})"
                if match
                else "; no known interception CA"
            )
        )
        return _blocked(method, match)
    if control_failed_too:
        evidence.notes.append(
            f"unknown: {failure} at {endpoint}; the control's handshake there failed too"
            f" ({control_tls.get('failure')})"
        )
        return Decision(None, None)
    evidence.notes.append(f"tls: {failure} at {endpoint} while the control's handshake succeeded")
    if evidence.sni_filtering is True:
        evidence.notes.append(
            "sni_filtering: a neutral or absent SNI got through where the real one did not"
        )
    elif evidence.sni_filtering is False:
        evidence.notes.append("tls: the SNI retries failed too (not SNI-specific)")
    return _blocked(method)


def _probe_chain(
    observed: Observations, handshake: Mapping[str, Any]
) -> list[CertificateDescription]:
    chain = handshake.get("certificate_chain") or []
    if chain:
        return list(chain)
    # The unverified second handshake that fetched the chain may be its own entry.
    for other in observed.tls_handshakes:
        if other.get("address") == handshake.get("address") and other.get("certificate_chain"):
            return list(other["certificate_chain"])
    return []


def _method_for_late_failure(evidence: Evidence, failure: str) -> Decision:
    """A failure after connecting (or on a redirect hop): name the step it belongs to."""
    if evidence.failed_hop is not None:
        step, entry = evidence.failed_hop
        evidence.notes.append(f"{step}: {failure} on a redirect hop while the control fetched the page")
        if step == "tls" and failure in _TLS_METHOD:
            return _tls_decision(evidence, _TLS_METHOD[failure], failure, entry)
        if step == "tcp" and failure in _TCP_METHOD:
            return _blocked(_TCP_METHOD[failure])
        if step == "dns":
            return _blocked(_DNS_METHOD.get(failure, "dns.inconsistent"))
    if failure == "generic_timeout_error" and evidence.observed.final_request is not None:
        # The page was still coming when the timeout fell: a crawl, or a censor's black hole.
        throttled = _decide_throttling(evidence)
        if throttled is not None:
            return throttled
    evidence.notes.append(f"http: {failure} while the control fetched the page")
    if failure in _HTTP_METHOD:
        return _blocked(_HTTP_METHOD[failure])
    if failure in _TLS_METHOD:
        final_request: Mapping[str, Any] = evidence.observed.final_request or {}
        handshake = _handshake_for_request(evidence.observed) or {
            "address": final_request.get("address")
        }
        return _tls_decision(evidence, _TLS_METHOD[failure], failure, handshake)
    if failure in _TCP_METHOD:
        return _blocked(_TCP_METHOD[failure])
    if failure in _DNS_METHOD or failure.startswith("dns_"):
        return _blocked(_DNS_METHOD.get(failure, "dns.inconsistent"))
    return Decision("http-failure", False)


def _detect_mitm_on_success(evidence: Evidence) -> Decision | None:
    """A verified handshake whose issuer is a known interception CA, or differs from the issuer the
    control saw at the same address and SNI (an interception root installed on the device)."""
    chains = (evidence.control.get("x_blockmon") or {}).get("certificate_chains") or {}
    for handshake in evidence.observed.tls_handshakes:
        if handshake.get("failure") is not None:
            continue
        chain = handshake.get("certificate_chain") or []
        if not chain:
            continue
        match = match_interception_ca(evidence.database, chain)
        endpoint = str(handshake.get("address"))
        control_chain = chains.get(endpoint) or []
        control_issuer = control_chain[0].get("issuer") if control_chain else None
        issuer = chain[0].get("issuer")
        if match is None and (control_issuer is None or control_issuer == issuer):
            continue
        evidence.notes.append(
            f"tls: issuer {issuer} at {endpoint}, control saw {control_issuer or 'no chain'}"
            + (f"; {match.evidence}" if match else "")
        )
        return _blocked("tls.mitm", match)
    return None


def _decide_throttling(evidence: Evidence) -> Decision | None:
    """tls.throttled / http.throttled when the rates say so (probes/analysis_throttle.py)."""
    if not evidence.throughput:
        return None
    judgement = judge_throttling(evidence.throughput)
    if judgement.throttled and judgement.step is not None:
        evidence.notes.append(judgement.note)
        return _blocked("tls.throttled" if judgement.step == "tls" else "http.throttled")
    if judgement.probe_rate is not None:
        evidence.notes.append(judgement.note)  # compared, and why it is not throttling
    return None
