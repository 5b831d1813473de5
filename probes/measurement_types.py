"""The measurement blockmon writes, as typed definitions: the OONI envelope, test_keys, each entry.

One definition per shape of docs/measurement-format.md (OONI df-000 base, df-001 HTTP, df-002 DNS,
df-005 TCP, df-006 TLS, ts-017 web_connectivity, and blockmon's `x_` and extra keys), so mypy
checks every key that crosses from the probe's steps to the analysis, the store and the collector.
Stored rows and OONI's own measurements are foreign data: the analysis reads them as
`Mapping[str, Any]` and trusts none of these types at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from probes.throughput import ThroughputKeys
from probes.vocabulary import Blocking, BlockingMethod, Failure

QueryType = Literal["A", "AAAA"]
ResolverEngine = Literal["system", "udp"]
DnsConsistency = Literal["consistent", "inconsistent"]
FingerprintKind = Literal["http_blockpage", "dns_blockpage", "interception_ca"]
Confidence = Literal["high", "medium", "low"]


# ---------------------------------------------------------------- DNS (df-002)


class DnsAnswer(TypedDict):
    """One answer record: a CNAME carries `hostname`, an A `ipv4`, an AAAA `ipv6`."""

    answer_type: Literal["A", "AAAA", "CNAME"]
    hostname: NotRequired[str]
    ipv4: NotRequired[str]
    ipv6: NotRequired[str]
    ttl: int
    # OONI's annotation of A/AAAA answers, written when an AS database is configured (docs/asn.md).
    asn: NotRequired[int]
    as_org_name: NotRequired[str]


class DnsQuery(TypedDict):
    hostname: str
    query_type: QueryType
    engine: ResolverEngine
    resolver_address: str
    failure: Failure | None
    rcode: int | None
    answers: list[DnsAnswer]
    t0: float
    t: float
    # blockmon: the redirect hop whose step this is (1 = first redirect target); absent for the URL.
    x_redirect_hop: NotRequired[int]


# ---------------------------------------------------------------- TCP (df-005)


class TcpStatus(TypedDict):
    success: bool
    failure: Failure | None
    # Filled by the analysis: failed here while the control connected.
    blocked: bool | None


class TcpConnect(TypedDict):
    ip: str
    port: int
    status: TcpStatus
    t0: float
    t: float
    x_redirect_hop: NotRequired[int]


# ---------------------------------------------------------------- TLS (df-006)


class PeerCertificate(TypedDict):
    format: Literal["base64"]
    data: str


class CertificateDescription(TypedDict):
    """One certificate as probes/certificates.py describes it (tls_handshakes[].certificate_chain)."""

    subject: str | None
    issuer: str | None
    sans: list[str]
    not_before: str | None
    not_after: str | None
    sha256: str
    sha1: str
    # A middlebox may send garbage; the hashes still identify it.
    parse_error: NotRequired[str]
    # Not written by the probe; matched when a chain from elsewhere carries it.
    spki_sha256: NotRequired[str]


class TlsHandshake(TypedDict):
    address: str
    server_name: str | None
    failure: Failure | None
    tls_version: str | None
    cipher_suite: str | None
    negotiated_protocol: str | None
    no_tls_verify: bool
    peer_certificates: list[PeerCertificate]
    certificate_chain: list[CertificateDescription]
    t0: float
    t: float
    x_redirect_hop: NotRequired[int]
    # blockmon: a retry with a neutral SNI or none (sni_differential).
    x_sni_retry: NotRequired[bool]


# ---------------------------------------------------------------- HTTP (df-001)


class HttpRequest(TypedDict):
    method: Literal["GET"]
    url: str
    headers: dict[str, str]
    headers_list: list[list[str]]


class HttpResponse(TypedDict):
    code: int
    headers: dict[str, str]
    # The headers as the server sent them, names as spelled, repeats kept.
    headers_list: list[list[str]]
    body: str
    body_is_truncated: bool
    body_length: int
    title: str


class HttpTransaction(TypedDict):
    """One requests[] item: a hop of the fetch (requests[] is most recent first)."""

    request: HttpRequest
    response: HttpResponse | None
    address: str
    failure: Failure | None
    t0: float
    t: float


# ---------------------------------------------------------------- blockmon's additions


class SniRetry(TypedDict):
    address: str
    server_name: str | None
    failure: Failure | None
    t: float


class FingerprintRecord(TypedDict):
    """test_keys.fingerprint: the known blockpage or interception CA that matched."""

    id: str
    kind: FingerprintKind
    name: str
    evidence: str
    confidence: Confidence
    country: str
    matched_by: str
    # Interception CAs only: what the chain looked like.
    issuer: NotRequired[str | None]
    chain_sha256: NotRequired[list[str]]
    chain_sha1: NotRequired[list[str]]


class InterceptionDetails(TypedDict):
    issuer: str | None
    chain_sha256: list[str]
    chain_sha1: list[str]


# ---------------------------------------------------------------- test_keys and envelope


class ObservationKeys(TypedDict):
    """What the probe observed, before the analysis adds its verdict."""

    queries: list[DnsQuery]
    tcp_connect: list[TcpConnect]
    tls_handshakes: list[TlsHandshake]
    requests: list[HttpTransaction]
    # The helper's answer (oohelperd shape, `{}` when none): read here as a map, its own TypedDict
    # belongs to the control protocol.
    control: Mapping[str, Any]
    # A failure string; probes/control.py returns it as str.
    control_failure: str | None
    sni_differential: list[SniRetry]
    # blockmon's addition: the rates throttling is judged on (probes/throughput.py).
    x_throughput: NotRequired[ThroughputKeys]


class AnalysisKeys(TypedDict):
    """The verdict's keys, merged into test_keys (ts-017's, and blockmon's method and evidence)."""

    blocking: Blocking | None
    accessible: bool | None
    blocking_method: BlockingMethod | None
    dns_consistency: DnsConsistency | None
    body_length_match: bool | None
    status_code_match: bool | None
    headers_match: bool | None
    title_match: bool | None
    fingerprint: FingerprintRecord | None
    x_analysis_notes: list[str]
    dns_experiment_failure: Failure | None
    http_experiment_failure: Failure | None
    sni_filtering: bool | None
    # The probe's entries again, with status.blocked filled in.
    tcp_connect: list[TcpConnect]


class TestKeys(ObservationKeys, AnalysisKeys):
    """web_connectivity's test_keys as blockmon writes them."""


class Measurement(TypedDict):
    """One OONI measurement (df-000) of test web_connectivity."""

    measurement_uid: str
    report_id: str
    input: str
    measurement_start_time: str
    test_start_time: str
    test_runtime: float
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    probe_ip: str
    resolver_ip: str
    resolver_asn: str
    resolver_network_name: str
    software_name: str
    software_version: str
    test_name: str
    test_version: str
    data_format_version: str
    annotations: dict[str, str]
    test_keys: TestKeys
