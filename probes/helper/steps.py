"""The helper's DNS, TCP and TLS steps (the probe's own step functions), cached per host and endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from probes.asn import open_asn_database
from probes.bogons import is_bogon, parse_networks
from probes.connection import Connection
from probes.control_protocol import CertificateEntry
from probes.dns import addresses_from_queries, is_ip_literal, probe_dns
from probes.endpoints import split_host_port
from probes.helper.cache import TTLCache
from probes.helper.connections import ConnectionKey, IdleConnections
from probes.helper.settings import HelperSettings
from probes.tcp import close_connection, probe_tcp
from probes.tls import probe_tls


@dataclass(frozen=True, slots=True)
class TlsCheck:
    server_name: str
    failure: str | None
    certificate_chain: list[CertificateEntry]


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """What the helper saw at one "ip:port": the TCP connect, and the TLS handshake for https."""

    tcp_success: bool
    tcp_failure: str | None
    tls: TlsCheck | None

    @property
    def failure(self) -> str | None:
        """Why a connection to this endpoint cannot carry a page (None: it can)."""
        if not self.tcp_success:
            return self.tcp_failure or "unknown_failure"
        return self.tls.failure if self.tls is not None else None


class HelperSteps:
    """The steps and the refused-range check, with the caches a burst of URLs of one host reuses,
    and the idle connections a checked endpoint leaves for the page fetch."""

    def __init__(self, settings: HelperSettings) -> None:
        self.settings = settings
        self.options = settings.probe_options()
        self.public_networks = parse_networks(self.options.lab_public_ranges)
        # Loaded (and checked) once by `blockmon helper` before serving; cached per process.
        self.asn_database = open_asn_database(settings.asn_database) if settings.asn_database else None
        self._refused: dict[str, bool] = {}
        self.dns_cache = TTLCache(settings.cache_ttl, settings.cache_size)
        self.endpoint_cache = TTLCache(settings.cache_ttl, settings.cache_size)
        self.connections = IdleConnections(settings.idle_connections, settings.idle_timeout)

    def is_refused_address(self, ip: str) -> bool:
        refused = self._refused.get(ip)
        if refused is None:
            refused = is_bogon(ip, self.public_networks)
            if len(self._refused) < self.settings.cache_size:
                self._refused[ip] = refused
        return refused

    def asn_of(self, ip: str) -> int:
        info = self.asn_database.lookup(ip) if self.asn_database is not None else None
        return info.asn if info else 0

    async def resolve(self, host: str) -> tuple[list[str], str | None]:
        """(addresses, failure) for a hostname, cached; an IP literal resolves to itself."""
        if is_ip_literal(host):
            return [host.strip("[]")], None

        async def lookup() -> tuple[list[str], str | None]:
            queries = await probe_dns(host, self.options)
            addresses = addresses_from_queries(queries)
            if addresses:
                return addresses, None
            failures = [
                q["failure"] for q in queries if q.get("failure") and q.get("query_type") == "A"
            ]
            failures += [q["failure"] for q in queries if q.get("failure")]
            return [], failures[0] if failures else "dns_no_answer"

        return await self.dns_cache.get(host.lower(), lookup)

    async def check_endpoint(
        self, endpoint: str, server_name: str | None, park: ConnectionKey | None = None
    ) -> EndpointCheck:
        """TCP (and TLS when server_name is given) to one endpoint, cached per (endpoint, SNI).

        With `park`, a connection that worked is handed over in `connections` under that key to
        the page fetch (one handshake per endpoint, as OONI's helper measures them); else closed.
        """

        async def measure() -> EndpointCheck:
            check, connection = await self.connect(endpoint, server_name)
            if connection is not None and park is not None:
                self.connections.hand_over(park, connection)
            else:
                await close_connection(connection)
            return check

        return await self.endpoint_cache.get((endpoint, server_name), measure)

    async def connect(self, endpoint: str, server_name: str | None) -> tuple[EndpointCheck, Connection | None]:
        """A fresh TCP connection (and verified TLS handshake when server_name is given)."""
        ip, port = split_host_port(endpoint)
        tcp_entry, connection = await probe_tcp(ip, port, self.options)
        tcp_success, tcp_failure = bool(tcp_entry["status"]["success"]), tcp_entry["status"]["failure"]
        if connection is None or server_name is None:
            return EndpointCheck(tcp_success, tcp_failure, None), connection
        tls_entry, tls_connection = await probe_tls(ip, port, server_name, self.options, connection=connection)
        # The probe's certificate description is the answer's entry, field for field.
        chain = cast(list[CertificateEntry], tls_entry["certificate_chain"])
        return EndpointCheck(tcp_success, tcp_failure, TlsCheck(server_name, tls_entry["failure"], chain)), tls_connection
