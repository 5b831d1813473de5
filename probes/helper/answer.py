"""Assemble the helper's ControlAnswer from its DNS, endpoint and page results; pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from probes.control_protocol import (
    IP_FLAG_BOGON,
    IP_FLAG_GIVEN_BY_PROBE,
    IP_FLAG_RESOLVED_BY_HELPER,
    IP_FLAG_VALID_FOR_DOMAIN,
    CertificateEntry,
    ControlAnswer,
    HttpRequestAnswer,
    IpInfo,
    TcpConnectAnswer,
    TlsHandshakeAnswer,
)
from probes.endpoints import split_host_port
from probes.helper.page import PageBody
from probes.helper.steps import EndpointCheck


def build_control_answer(
    *,
    addresses: list[str],
    dns_failure: str | None,
    given: Sequence[str],
    checks: Sequence[tuple[str, EndpointCheck]],
    page: tuple[HttpRequestAnswer, PageBody],
    is_refused: Callable[[str], bool],
    asn_of: Callable[[str], int],
) -> ControlAnswer:
    """The answer for one request: `given` are the probe's addresses, `checks` by endpoint."""
    tcp_connect: dict[str, TcpConnectAnswer] = {}
    tls_handshake: dict[str, TlsHandshakeAnswer] = {}
    chains: dict[str, list[CertificateEntry]] = {}
    ip_info: dict[str, IpInfo] = {}
    for endpoint, check in checks:
        ip = split_host_port(endpoint)[0]
        tcp_connect[endpoint] = {"status": check.tcp_success, "failure": check.tcp_failure}
        flags = (IP_FLAG_RESOLVED_BY_HELPER if ip in addresses else 0) | (
            IP_FLAG_GIVEN_BY_PROBE if ip in given else 0
        )
        flags |= IP_FLAG_BOGON if is_refused(ip) else 0
        if check.tls is not None:
            tls_handshake[endpoint] = {
                "server_name": check.tls.server_name,
                "status": check.tls.failure is None,
                "failure": check.tls.failure,
            }
            chains[endpoint] = check.tls.certificate_chain
            flags |= IP_FLAG_VALID_FOR_DOMAIN if check.tls.failure is None else 0
        earlier = (ip_info.get(ip) or {}).get("flags") or 0
        ip_info[ip] = {"asn": asn_of(ip), "flags": earlier | flags}
    http_request, body = page
    return {
        "dns": {"failure": dns_failure, "addrs": addresses},
        "tcp_connect": tcp_connect,
        "tls_handshake": tls_handshake,
        "quic_handshake": {},
        "http_request": http_request,
        "http3_request": None,
        "ip_info": ip_info,
        "x_blockmon": {
            "certificate_chains": chains,
            "body_sha256": body.body_sha256,
            "body_simhash": body.body_simhash,
            "body_is_truncated": body.body_is_truncated,
            "throughput": body.throughput,
        },
    }
