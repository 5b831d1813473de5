"""Judge one measurement: the probe's observations and the control's, in; a Verdict out; pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probes.analysis_compare import (
    DnsComparison,
    HttpComparison,
    compare_dns,
    compare_http,
    is_ipv6,
)
from probes.analysis_observe import (
    Observations,
    classify_tcp_blocking,
    copy_json,
    detect_sni_filtering,
    failed_hop_step,
    https_page_verified,
    read_observations,
    redirect_hop_entries,
    tcp_endpoint,
    verified_addresses,
)
from probes.bogons import IPNetwork, parse_networks
from probes.fingerprints import (
    FingerprintDB,
    Match,
    default_fingerprints,
    match_dns_blockpage,
    match_http_blockpage,
    match_interception_ca,
)
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


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the analysis concluded, in test_keys vocabulary (docs/measurement-format.md)."""

    blocking: Blocking | None
    accessible: bool | None
    blocking_method: BlockingMethod | None = None
    dns_consistency: str | None = None
    body_length_match: bool | None = None
    status_code_match: bool | None = None
    headers_match: bool | None = None
    title_match: bool | None = None
    fingerprint: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    dns_experiment_failure: str | None = None
    http_experiment_failure: str | None = None
    sni_filtering: bool | None = None
    # The probe's tcp_connect entries, copied, with status.blocked filled in.
    tcp_connect: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def as_test_keys(self) -> dict[str, Any]:
        """The keys to merge into the measurement's test_keys (test_keys.update(...))."""
        return {
            "blocking": self.blocking,
            "accessible": self.accessible,
            "blocking_method": self.blocking_method,
            "dns_consistency": self.dns_consistency,
            "body_length_match": self.body_length_match,
            "status_code_match": self.status_code_match,
            "headers_match": self.headers_match,
            "title_match": self.title_match,
            "fingerprint": self.fingerprint,
            "x_analysis_notes": list(self.notes),
            "dns_experiment_failure": self.dns_experiment_failure,
            "http_experiment_failure": self.http_experiment_failure,
            "sni_filtering": self.sni_filtering,
            "tcp_connect": [copy_json(entry) for entry in self.tcp_connect],
        }

    @property
    def tcp_blocked(self) -> list[bool | None]:
        return [entry.get("status", {}).get("blocked") for entry in self.tcp_connect]


@dataclass(slots=True)
class _Context:
    """Everything the decision needs, computed once."""

    observed: Observations
    control: dict[str, Any]
    control_http: dict[str, Any]
    dns: DnsComparison
    http: HttpComparison | None
    page_match: Match | None
    dns_match: Match | None
    sni_filtering: bool | None
    tcp_judged: list[dict[str, Any]]
    database: FingerprintDB
    # The step of a redirect hop that failed before its HTTP exchange, and its entry.
    failed_hop: tuple[str, dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Decision:
    blocking: Blocking | None
    accessible: bool | None
    method: BlockingMethod | None = None
    fingerprint: Match | None = None


def analyze(
    test_keys: dict[str, Any],
    *,
    public_networks: tuple[str | IPNetwork, ...] | list[str] = (),
    fingerprints: FingerprintDB | None = None,
) -> Verdict:
    """OONI Web Connectivity's analysis, refined (docs/outcomes.md): which step was interfered
    with, how, and by which known blockpage or interception CA."""
    database = fingerprints if fingerprints is not None else default_fingerprints()
    networks = parse_networks(public_networks)
    observed = read_observations(test_keys)
    control_failure = test_keys.get("control_failure")
    raw_control = test_keys.get("control")
    have_control = control_failure is None and isinstance(raw_control, dict) and bool(raw_control)
    control: dict[str, Any] = raw_control if have_control else {}  # type: ignore[assignment]
    control_http = control.get("http_request") or {}
    dns = compare_dns(
        observed.addresses,
        observed.dns_failure,
        control.get("dns") or {},
        control.get("ip_info") or {},
        verified_addresses(observed.tls_handshakes, observed.hostname),
        networks,
        probe_asns=observed.answer_asns,
    )
    page = observed.page
    http = None
    if page is not None and have_control and control_http and control_http.get("failure") is None:
        http = compare_http(page, control_http, control.get("x_blockmon") or {})
    page_match = None
    if page is not None:
        page_match = match_http_blockpage(
            database, page.get("body"), page.get("headers"), page.get("title")
        )
        if page_match is not None and _control_shows_same_page(
            database, page_match, control_http, http
        ):
            page_match = None
    context = _Context(
        observed=observed,
        control=control,
        control_http=control_http,
        dns=dns,
        http=http,
        page_match=page_match,
        dns_match=match_dns_blockpage(database, observed.addresses),
        sni_filtering=detect_sni_filtering(test_keys.get("sni_differential") or []),
        tcp_judged=classify_tcp_blocking(observed.tcp_connect, control.get("tcp_connect") or {}),
        database=database,
        failed_hop=failed_hop_step(test_keys),
    )
    if dns.consistency == "consistent" and dns.reason.startswith("same AS"):
        context.notes.append(f"dns: other addresses than the control's, {dns.reason}")
    if not have_control:
        context.notes.append(f"control_unavailable: {control_failure or 'no control response'}")
        decision = _decide_without_control(context)
    else:
        decision = _decide(context)
    return Verdict(
        blocking=decision.blocking,
        accessible=decision.accessible,
        blocking_method=decision.method,
        dns_consistency=dns.consistency,
        body_length_match=http.body_length_match if http else None,
        status_code_match=http.status_code_match if http else None,
        headers_match=http.headers_match if http else None,
        title_match=http.title_match if http else None,
        fingerprint=decision.fingerprint.as_dict() if decision.fingerprint else None,
        notes=tuple(context.notes),
        dns_experiment_failure=observed.dns_failure,
        http_experiment_failure=observed.http_failure,
        sni_filtering=context.sni_filtering,
        tcp_connect=(
            *context.tcp_judged,
            *redirect_hop_entries(test_keys.get("tcp_connect")),
        ),
    )


def _control_shows_same_page(
    database: FingerprintDB, match: Match, control_http: dict[str, Any], http: HttpComparison | None
) -> bool:
    # The site itself may use a blockpage's words (a page about censorship): the control saw it too.
    if http is not None and http.body_hash_match:
        return True
    control_match = match_http_blockpage(
        database, None, control_http.get("headers"), control_http.get("title")
    )
    return control_match is not None and control_match.id == match.id


def _blocked(method: BlockingMethod, fingerprint: Match | None = None) -> _Decision:
    return _Decision(BLOCKING_OF_METHOD[method], False, method, fingerprint)


_ACCESSIBLE = _Decision(False, True)


def _decide_without_control(context: _Context) -> _Decision:
    observed = context.observed
    if https_page_verified(observed):
        # A certificate that verifies is the site's own word: no censor could have forged it.
        context.notes.append("accessible: https page with a valid certificate")
        return _ACCESSIBLE
    evidence = context.page_match or context.dns_match
    if evidence is not None:
        context.notes.append(f"unconfirmed: fingerprint {evidence.id} matched without a control")
    if context.dns.bogon_addresses:
        context.notes.append(f"unconfirmed: bogon answer {', '.join(context.dns.bogon_addresses)}")
    return _Decision(None, None, None, evidence)


def _decide(context: _Context) -> _Decision:
    observed, dns = context.observed, context.dns
    # Tampering evidence that stands even if the site is also down.
    if context.dns_match is not None:
        context.notes.append(f"dns: {context.dns_match.evidence}")
        return _blocked("dns.blockpage", context.dns_match)
    if dns.bogon_addresses:
        context.notes.append(f"dns: bogon answer {', '.join(dns.bogon_addresses)}")
        if context.page_match is not None:
            return _blocked("dns.blockpage", context.page_match)
        return _blocked("dns.bogon")
    control_http_failure = (
        context.control_http.get("failure") if context.control_http else "no_control_http"
    )
    if control_http_failure is not None:
        return _decide_control_failed(context, str(control_http_failure))
    if observed.dns_failure is not None:
        method = _DNS_METHOD.get(observed.dns_failure, "dns.inconsistent")
        context.notes.append(f"dns: {observed.dns_failure} while the control resolved the host")
        return _blocked(method)
    if dns.consistency == "inconsistent":
        if context.page_match is not None:
            context.notes.append(f"dns: {dns.reason}; the page there is a blockpage")
            return _blocked("dns.blockpage", context.page_match)
        if context.http is not None and context.http.same_page:
            context.notes.append(f"dns: {dns.reason}, but the page matches the control's")
            return _ACCESSIBLE
        context.notes.append(f"dns: {dns.reason}")
        return _blocked("dns.inconsistent")
    if observed.page is None:
        return _decide_connection_failure(context)
    mitm = _detect_mitm_on_success(context)
    if mitm is not None:
        return mitm
    # No censor can alter a page (or a redirect) that came over https with a certificate that
    # verifies for the host: a different page is the site's own answer (geo-restriction, a WAF
    # that treats the control's datacenter address as a bot).
    verified = observed.all_hops_https and https_page_verified(observed)
    if context.page_match is not None and not verified:
        context.notes.append(f"http: {context.page_match.evidence}")
        return _blocked("http.blockpage", context.page_match)
    if context.http is not None and context.http.same_page:
        return _ACCESSIBLE
    if verified:
        what = f"; it matches {context.page_match.id}" if context.page_match else ""
        context.notes.append(
            f"http: another page than the control's, over verified https (the site's own){what}"
        )
        return _ACCESSIBLE
    context.notes.append("http: the page differs from the control's")
    return _blocked("http.diff")


def _decide_control_failed(context: _Context, control_http_failure: str) -> _Decision:
    observed = context.observed
    if observed.page is None:
        context.notes.append(f"down: the control failed too ({control_http_failure})")
        return _Decision(False, False)
    if context.page_match is not None:
        method: BlockingMethod = (
            "dns.blockpage" if context.dns.consistency == "inconsistent" else "http.blockpage"
        )
        context.notes.append(
            f"http: {context.page_match.evidence} (the control failed: {control_http_failure})"
        )
        return _blocked(method, context.page_match)
    if https_page_verified(observed) or context.dns.consistency == "consistent":
        context.notes.append(
            f"accessible: the probe fetched the page the control could not ({control_http_failure})"
        )
        return _ACCESSIBLE
    context.notes.append(
        f"unknown: the control failed ({control_http_failure}) and the probe's page is unverified"
    )
    return _Decision(None, None)


def _decide_connection_failure(context: _Context) -> _Decision:
    observed = context.observed
    tcp = context.tcp_judged
    if tcp and not any((entry.get("status") or {}).get("success") for entry in tcp):
        if all(_no_ipv6_route(entry) for entry in tcp):
            # Every address is IPv6 and the vantage has no route there: its limit, not a censor's.
            context.notes.append(
                f"unknown: no IPv6 route at the vantage to {tcp_endpoint(tcp[0])}; the control connected"
            )
            return _Decision(None, None)
        first = _first_blocked_or_failed(tcp)
        failure = str((first.get("status") or {}).get("failure"))
        context.notes.append(f"tcp: {failure} to {tcp_endpoint(first)} while the control connected")
        method = _TCP_METHOD.get(failure)
        return _blocked(method) if method else _Decision("tcp_ip", False)
    tls = _decide_tls_failure(context)
    if tls is not None:
        return tls
    failure = observed.http_failure or "unknown_failure"
    return _method_for_late_failure(context, failure)


def _no_ipv6_route(entry: dict[str, Any]) -> bool:
    status = entry.get("status") or {}
    return (
        status.get("blocked") is None
        and status.get("failure") in ("host_unreachable", "network_unreachable")
        and is_ipv6(str(entry.get("ip")))
    )


def _first_blocked_or_failed(tcp: list[dict[str, Any]]) -> dict[str, Any]:
    for entry in tcp:
        if (entry.get("status") or {}).get("blocked"):
            return entry
    return tcp[0]


def _decide_tls_failure(context: _Context) -> _Decision | None:
    observed = context.observed
    handshakes = observed.tls_handshakes
    if not handshakes or any(h.get("failure") is None for h in handshakes):
        return None
    handshake = _handshake_for_request(observed) or handshakes[0]
    failure = str(handshake.get("failure"))
    method = _TLS_METHOD.get(failure)
    if method is None:
        return None
    return _tls_decision(context, method, failure, handshake)


def _handshake_for_request(observed: Observations) -> dict[str, Any] | None:
    address = observed.final_request.get("address") if observed.final_request else None
    for handshake in observed.tls_handshakes:
        if address and handshake.get("address") == address:
            return handshake
    return None


def _tls_decision(
    context: _Context, method: BlockingMethod, failure: str, handshake: dict[str, Any]
) -> _Decision:
    endpoint = str(handshake.get("address"))
    control_tls = (context.control.get("tls_handshake") or {}).get(endpoint) or {}
    # The control fetched the page elsewhere (another server of the pool) but failed here too:
    # this server's own fault (an expired or wrong certificate, a broken TLS stack).
    control_failed_too = bool(control_tls) and not control_tls.get("status")
    if method == "tls.mitm":
        chain = _probe_chain(context.observed, handshake)
        match = match_interception_ca(context.database, chain) if chain else None
        issuer = chain[0].get("issuer") if chain else None
        if control_failed_too:
            context.notes.append(
                f"tls: the control's handshake with {endpoint} failed too"
                f" ({control_tls.get('failure')})"
            )
            if match is None:
                context.notes.append(f"unknown: {failure} at {endpoint}, issuer {issuer or 'unknown'}")
                return _Decision(None, None)
        context.notes.append(
            f"tls: {failure} at {endpoint}; issuer {issuer or 'unknown'}"
            + (
                f"; known interception CA {match.id} (by {match.matched_by})"
                if match
                else "; no known interception CA"
            )
        )
        return _blocked(method, match)
    if control_failed_too:
        context.notes.append(
            f"unknown: {failure} at {endpoint}; the control's handshake there failed too"
            f" ({control_tls.get('failure')})"
        )
        return _Decision(None, None)
    context.notes.append(f"tls: {failure} at {endpoint} while the control's handshake succeeded")
    if context.sni_filtering is True:
        context.notes.append(
            "sni_filtering: a neutral or absent SNI got through where the real one did not"
        )
    elif context.sni_filtering is False:
        context.notes.append("tls: the SNI retries failed too (not SNI-specific)")
    return _blocked(method)


def _probe_chain(observed: Observations, handshake: dict[str, Any]) -> list[dict[str, Any]]:
    chain = handshake.get("certificate_chain") or []
    if chain:
        return list(chain)
    # The unverified second handshake that fetched the chain may be its own entry.
    for other in observed.tls_handshakes:
        if other.get("address") == handshake.get("address") and other.get("certificate_chain"):
            return list(other["certificate_chain"])
    return []


def _method_for_late_failure(context: _Context, failure: str) -> _Decision:
    """A failure after connecting (or on a redirect hop): name the step it belongs to."""
    if context.failed_hop is not None:
        step, entry = context.failed_hop
        context.notes.append(f"{step}: {failure} on a redirect hop while the control fetched the page")
        if step == "tls" and failure in _TLS_METHOD:
            return _tls_decision(context, _TLS_METHOD[failure], failure, entry)
        if step == "tcp" and failure in _TCP_METHOD:
            return _blocked(_TCP_METHOD[failure])
        if step == "dns":
            return _blocked(_DNS_METHOD.get(failure, "dns.inconsistent"))
    context.notes.append(f"http: {failure} while the control fetched the page")
    if failure in _HTTP_METHOD:
        return _blocked(_HTTP_METHOD[failure])
    if failure in _TLS_METHOD:
        final_request = context.observed.final_request or {}
        handshake = _handshake_for_request(context.observed) or {
            "address": final_request.get("address")
        }
        return _tls_decision(context, _TLS_METHOD[failure], failure, handshake)
    if failure in _TCP_METHOD:
        return _blocked(_TCP_METHOD[failure])
    if failure in _DNS_METHOD or failure.startswith("dns_"):
        return _blocked(_DNS_METHOD.get(failure, "dns.inconsistent"))
    return _Decision("http-failure", False)


def _detect_mitm_on_success(context: _Context) -> _Decision | None:
    """A verified handshake whose issuer is a known interception CA, or differs from the issuer the
    control saw at the same address and SNI (an interception root installed on the device)."""
    chains = (context.control.get("x_blockmon") or {}).get("certificate_chains") or {}
    for handshake in context.observed.tls_handshakes:
        if handshake.get("failure") is not None:
            continue
        chain = handshake.get("certificate_chain") or []
        if not chain:
            continue
        match = match_interception_ca(context.database, chain)
        endpoint = str(handshake.get("address"))
        control_chain = chains.get(endpoint) or []
        control_issuer = control_chain[0].get("issuer") if control_chain else None
        issuer = chain[0].get("issuer")
        if match is None and (control_issuer is None or control_issuer == issuer):
            continue
        context.notes.append(
            f"tls: issuer {issuer} at {endpoint}, control saw {control_issuer or 'no chain'}"
            + (f"; {match.evidence}" if match else "")
        )
        return _blocked("tls.mitm", match)
    return None
