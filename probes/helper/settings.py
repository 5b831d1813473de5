"""The helper's settings: what it serves, where it resolves, and the limits of one request."""

from __future__ import annotations

from dataclasses import dataclass

from probes.options import ProbeOptions

# --allow-private makes every address count as public (the bogon filter then lets all through).
EVERYTHING = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True, slots=True)
class HelperSettings:
    """Everything the helper needs; limits are documented in docs/control-protocol.md."""

    resolvers: tuple[str, ...] = ()
    ca_file: str | None = None
    public_ranges: tuple[str, ...] = ()
    allow_private: bool = False
    token: str | None = None
    max_concurrency: int = 64
    # Requests allowed to wait for a slot; one more gets 503 at once.
    max_queue: int = 512
    max_request_bytes: int = 64 * 1024
    max_addresses: int = 16
    body_limit: int = 1024 * 1024
    max_redirects: int = 10
    dns_timeout: float = 4.0
    connect_timeout: float = 5.0
    tls_timeout: float = 5.0
    http_timeout: float = 10.0
    # The control's view of an endpoint does not change within seconds, while a round sends many
    # URLs of one host at once: per-host DNS and per-(address, SNI) TCP/TLS results are reused.
    cache_ttl: float = 30.0
    cache_size: int = 8192
    # Kept-alive connections for the next page of an origin asked again (a first contact's is
    # closed); each idle TLS connection holds ~28 KB (its OpenSSL state; probes/connection.py).
    idle_connections: int = 128
    idle_timeout: float = 10.0
    # iptoasn TSV (probes/asn.py): fills ip_info[addr].asn; unset = asn 0 (unknown), as before.
    asn_database: str | None = None

    def probe_options(self) -> ProbeOptions:
        return ProbeOptions(
            resolvers=self.resolvers,
            ca_file=self.ca_file,
            lab_public_ranges=EVERYTHING if self.allow_private else self.public_ranges,
            dns_timeout=self.dns_timeout,
            connect_timeout=self.connect_timeout,
            tls_timeout=self.tls_timeout,
            http_timeout=self.http_timeout,
            body_limit=self.body_limit,
            max_redirects=self.max_redirects,
        )
