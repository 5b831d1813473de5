"""Options that steer one measurement: who the probe is, whom it asks, and its limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProbeIdentity:
    """Where a measurement is taken from; from configuration or flags, never guessed."""

    probe_cc: str = "ZZ"
    probe_asn: str = "AS0"
    probe_network_name: str = ""
    vantage_id: str = "local"


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """Everything the probe steps need; passed down, never read from globals."""

    identity: ProbeIdentity = field(default_factory=ProbeIdentity)
    # None = the system resolver (/etc/resolv.conf through dnspython); else "IP" or "IP:PORT".
    resolvers: tuple[str, ...] = ()
    helper_url: str | None = None
    helper_token: str | None = None
    # Local address to bind outgoing sockets to (multi-homed hosts; the lab's censored vantage).
    source_address: str | None = None
    dns_timeout: float = 5.0
    connect_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 15.0
    control_timeout: float = 30.0
    body_limit: int = 1024 * 1024
    # Past body_limit the body is read on, only counted, to this many bytes in all or this many
    # seconds from its first byte, so a rate can be measured on a page larger than the cap.
    throughput_bytes: int = 2 * 1024 * 1024
    throughput_seconds: float = 5.0
    # Neutral large resources on this vantage's network (the control targets' throughput URLs):
    # the baseline a throttled target is compared with (probes/analysis_throttle.py).
    throughput_baselines: tuple[str, ...] = ()
    # (measured URL, its throughput URL) pairs, for callers that pass no throughput_url themselves.
    throughput_urls: tuple[tuple[str, str], ...] = ()
    max_redirects: int = 10
    # Address ranges that count as public although they are bogons (a lab on 127.0.0.0/8).
    lab_public_ranges: tuple[str, ...] = ()
    # CA bundle for TLS verification; None = the system store (SSL_CERT_FILE honoured).
    ca_file: str | None = None
    # iptoasn TSV (probes/asn.py): the AS of each DNS answer, for the DNS consistency test.
    asn_database: str | None = None
    # OONI-format fingerprint CSV added to the packaged fingerprints ([probe] extra_fingerprints).
    extra_fingerprints: str | None = None

    def public_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(r, strict=False) for r in self.lab_public_ranges)
