"""Judge one measurement: the probe's observations and the control's, in; a Verdict out; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probes.analysis_compare import DnsComparison, HttpComparison, compare_dns, compare_http
from probes.analysis_decide import Evidence, decide_with_control, decide_without_control
from probes.analysis_observe import (
    classify_tcp_blocking,
    copy_json,
    detect_sni_filtering,
    failed_hop_step,
    read_observations,
    redirect_hop_entries,
    verified_addresses,
)
from probes.bogons import IPNetwork, is_ip_address, parse_networks
from probes.fingerprints_load import default_fingerprints
from probes.fingerprints_match import (
    FingerprintDB,
    Match,
    match_dns_blockpage,
    match_http_blockpage,
)
from probes.measurement_types import (
    AnalysisKeys,
    DnsConsistency,
    FingerprintRecord,
    HttpResponse,
    TcpConnect,
)
from probes.ooni.encoding import readable_response
from probes.vocabulary import Blocking, BlockingMethod, Failure


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the analysis concluded, in test_keys vocabulary (docs/measurement-format.md)."""

    blocking: Blocking | None
    accessible: bool | None
    blocking_method: BlockingMethod | None = None
    dns_consistency: DnsConsistency | None = None
    body_length_match: bool | None = None
    status_code_match: bool | None = None
    headers_match: bool | None = None
    title_match: bool | None = None
    fingerprint: FingerprintRecord | None = None
    notes: tuple[str, ...] = ()
    dns_experiment_failure: Failure | None = None
    http_experiment_failure: Failure | None = None
    sni_filtering: bool | None = None
    # The probe's tcp_connect entries, copied, with status.blocked filled in.
    tcp_connect: tuple[TcpConnect, ...] = field(default_factory=tuple)

    def as_test_keys(self) -> AnalysisKeys:
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


# test_keys is read as a plain map: analyze() also re-judges stored rows and OONI's own data.
def analyze(
    test_keys: Mapping[str, Any],
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
    if observed.hostname is not None and is_ip_literal(observed.hostname):
        # An IP-address URL resolves nothing: there is no DNS to be consistent or not.
        dns = DnsComparison(None, (), "IP-address URL")
    page = observed.page
    if page is not None and not _is_text_response(page):
        # OONI stores non-UTF-8 bodies (and old versions some headers) as base64 objects.
        page = readable_response(page)  # type: ignore[assignment]
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
    evidence = Evidence(
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
        throughput=test_keys.get("x_throughput"),
    )
    if dns.consistency == "consistent" and dns.reason.startswith("same AS"):
        evidence.notes.append(f"dns: other addresses than the control's, {dns.reason}")
    if not have_control:
        evidence.notes.append(f"control_unavailable: {control_failure or 'no control response'}")
        decision = decide_without_control(evidence)
    else:
        decision = decide_with_control(evidence)
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
        notes=tuple(evidence.notes),
        dns_experiment_failure=observed.dns_failure,
        http_experiment_failure=observed.http_failure,
        sni_filtering=evidence.sni_filtering,
        tcp_connect=(
            *evidence.tcp_judged,
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


def is_ip_literal(hostname: str) -> bool:
    return is_ip_address(hostname.strip("[]"))


def _is_text_response(page: HttpResponse) -> bool:
    headers = page.get("headers") or {}
    return isinstance(page.get("body"), str | None) and all(
        isinstance(value, str) for value in headers.values()
    )
