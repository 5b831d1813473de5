"""DNS step: A and AAAA lookups recorded as OONI df-002 query entries, failures as strings."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import secrets
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from probes.bogons import is_ip_address
from probes.dns_wire import TYPE_A, TYPE_AAAA, TYPE_CNAME, Reply, read_reply
from probes.errors import NETWORK_ERRORS, InvalidInput, classify_failure
from probes.measurement_types import DnsAnswer, DnsQuery, QueryType, ResolverEngine
from probes.options import ProbeOptions
from probes.vocabulary import Failure

_RCODE_FAILURES: dict[int, Failure] = {
    dns.rcode.NXDOMAIN: "dns_nxdomain_error",
    dns.rcode.SERVFAIL: "dns_servfail_error",
    dns.rcode.REFUSED: "dns_refused_error",
}


@dataclass(frozen=True, slots=True)
class Resolver:
    """One DNS server to ask, and how the measurement names the way it was chosen."""

    ip: str
    port: int
    engine: ResolverEngine

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@functools.lru_cache(maxsize=256)
def parse_resolver(text: str) -> Resolver:
    """Parse "IP", "IP:PORT", "[IPv6]:PORT" or a bare IPv6 address."""
    host, port_text = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":") or "53"
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    try:
        ip = str(ipaddress.ip_address(host))
        port = int(port_text)
    except ValueError:
        raise InvalidInput(f"resolver {text!r}: expected IP or IP:PORT") from None
    if not 0 < port < 65536:
        raise InvalidInput(f"resolver {text!r}: port {port} out of range")
    return Resolver(ip, port, "udp")


@functools.cache
def system_resolvers() -> tuple[Resolver, ...]:
    """The nameservers of /etc/resolv.conf, read once per process."""
    try:
        configured = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple(Resolver(str(ip), configured.port, "system") for ip in configured.nameservers)


def resolvers_for(options: ProbeOptions) -> tuple[Resolver, ...]:
    if options.resolvers:
        return tuple(parse_resolver(text) for text in options.resolvers)
    return system_resolvers()


def addresses_from_queries(queries: Sequence[DnsQuery]) -> list[str]:
    """The IPv4 then IPv6 addresses the queries returned, in answer order, without duplicates."""
    seen: dict[str, None] = {}
    for query in sorted(queries, key=lambda q: q["query_type"] != "A"):
        for answer in query.get("answers") or []:
            ip = answer.get("ipv4") or answer.get("ipv6")
            if ip:
                seen.setdefault(ip, None)
    return list(seen)


def is_ip_literal(host: str) -> bool:
    return is_ip_address(host.strip("[]"))


def is_valid_hostname(hostname: str) -> bool:
    """Whether `hostname` can be looked up (an IP literal needs no lookup); checked before a
    redirect's host or a control request's host reaches probe_dns, which raises InvalidInput."""
    if is_ip_literal(hostname):
        return True
    try:
        _query_template(hostname, "A")
    except InvalidInput:
        return False
    return True


async def probe_dns(hostname: str, options: ProbeOptions, *, started: float | None = None) -> list[DnsQuery]:
    """Ask for A and AAAA concurrently; an IP literal needs no query and yields []."""
    if is_ip_literal(hostname):
        return []
    started = time.monotonic() if started is None else started
    resolvers = resolvers_for(options)
    # A and AAAA go out together from one socket per resolver, as the glibc stub resolver sends them.
    sockets = _UdpSockets(options.source_address)
    try:
        a_query, aaaa_query = await asyncio.gather(
            _query(hostname, "A", resolvers, options, started, sockets),
            _query(hostname, "AAAA", resolvers, options, started, sockets),
        )
    finally:
        sockets.close()
    return [a_query, aaaa_query]


async def _query(
    hostname: str,
    query_type: QueryType,
    resolvers: tuple[Resolver, ...],
    options: ProbeOptions,
    started: float,
    sockets: _UdpSockets,
) -> DnsQuery:
    t0 = time.monotonic() - started
    entry: DnsQuery = {
        "hostname": hostname,
        "query_type": query_type,
        "engine": resolvers[0].engine if resolvers else "system",
        "resolver_address": resolvers[0].address if resolvers else "",
        "failure": None,
        "rcode": None,
        "answers": [],
        "t0": round(t0, 6),
        "t": round(t0, 6),  # the end, set below on every path
    }
    if not resolvers:
        entry["failure"] = "dns_server_misbehaving"
        entry["t"] = entry["t0"]
        return entry
    # Like the system stub resolver: try the next server when one does not answer, cannot be
    # reached or answers garbage; an answer (even NXDOMAIN) is final. The entry records the last.
    for resolver in resolvers:
        entry["engine"], entry["resolver_address"] = resolver.engine, resolver.address
        try:
            response = await _ask(hostname, query_type, resolver, options, sockets)
        except NETWORK_ERRORS as error:
            entry["failure"] = classify_failure(error)
            continue
        entry["failure"] = None
        _record_response(entry, response, query_type)
        break
    entry["t"] = round(time.monotonic() - started, 6)
    return entry


# A name of plain labels (what validate_url leaves after IDNA): its query is written directly.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
_QUERY_TYPES = {"A": 1, "AAAA": 28}
# The header after the id: RD set, one question, no other records (as dnspython's make_query).
_HEADER_AFTER_ID = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0)


@functools.lru_cache(maxsize=4096)
def _query_template(hostname: str, query_type: QueryType) -> bytes:
    """The query's wire form after the 2-byte id, built once per name and type.

    Plain names are encoded here (dnspython's Name and Message cost more than sending the query);
    anything else goes through dnspython, which also says why a name is invalid.
    """
    if _PLAIN_NAME.fullmatch(hostname):
        labels = hostname.rstrip(".").encode("ascii").split(b".")
        qname = b"".join(bytes((len(label),)) + label for label in labels) + b"\0"
        if len(qname) <= 255:
            return _HEADER_AFTER_ID + qname + struct.pack("!HH", _QUERY_TYPES[query_type], 1)
    try:
        name = dns.name.from_text(hostname)
    except dns.exception.DNSException:
        raise InvalidInput(f"hostname {hostname!r} is not a valid DNS name") from None
    query = dns.message.make_query(name, query_type)
    query.flags |= dns.flags.RD
    return query.to_wire()[2:]


async def _ask(
    hostname: str, query_type: QueryType, resolver: Resolver, options: ProbeOptions, sockets: _UdpSockets
) -> Reply:
    wire_after_id = _query_template(hostname, query_type)
    async with asyncio.timeout(options.dns_timeout):
        query_id, wire = await sockets.exchange(resolver, wire_after_id)
    # The header after the id is 10 bytes; the question follows.
    reply = read_reply(wire, wire_after_id[10:])
    if reply is not None:
        return reply
    response = dns.message.from_wire(wire)
    if not _is_response(query_id, wire_after_id, response):
        raise dns.query.BadResponse
    if response.flags & dns.flags.TC:
        # Too big for UDP: ask again over TCP, as a stub resolver does.
        query = dns.message.from_wire(query_id.to_bytes(2, "big") + wire_after_id)
        response = await dns.asyncquery.tcp(
            query, resolver.ip, timeout=options.dns_timeout, port=resolver.port, source=options.source_address
        )
    return reply_from_message(response)


def reply_from_message(response: dns.message.Message) -> Reply:
    """The answer RRsets the DNS step records, from a message dnspython read."""
    rrsets: list[tuple[int, int, tuple[str, ...]]] = []
    for rrset in response.answer:
        if rrset.rdclass != dns.rdataclass.IN:
            continue  # another class's A record is opaque data, not an address
        if rrset.rdtype == dns.rdatatype.CNAME:
            values = tuple(str(rdata.target).rstrip(".") for rdata in rrset)
        elif rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            values = tuple(str(rdata.address) for rdata in rrset)
        else:
            continue
        rrsets.append((int(rrset.rdtype), rrset.ttl, values))
    return Reply(rcode=int(response.rcode()), rrsets=tuple(rrsets))


def _is_response(query_id: int, wire_after_id: bytes, response: dns.message.Message) -> bool:
    # dnspython's own check, against the query as sent (rebuilt only for replies read this way).
    return dns.message.from_wire(query_id.to_bytes(2, "big") + wire_after_id).is_response(response)


# Seconds after the first send, then after that resend, to send a UDP query again (same id): the
# answer to any copy counts. glibc sends again only after its whole 5 s timeout.
RETRANSMIT_AFTER = (1.0, 2.0)


class _ReplyCatcher(asyncio.DatagramProtocol):
    """Resolves each pending query's future with the first datagram carrying its id."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 2 else None
        if reply is not None and not reply.done():
            reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP port unreachable comes back as ConnectionRefusedError on the connected socket.
        for reply in self.pending.values():
            if not reply.done():
                reply.set_exception(exc)


class _UdpSockets:
    """Connected UDP sockets, one per resolver, for the queries of one lookup.

    Leaner than dnspython's async backend, which costs more than the query itself at the
    throughput the engine aims for; dnspython still builds and parses the messages. Each lookup
    gets fresh sockets (a random source port), and each query a random id.
    """

    def __init__(self, source_address: str | None) -> None:
        self.source_address = source_address
        # One opening per resolver, awaited by both query types (else each would open its own).
        self.sockets: dict[Resolver, asyncio.Task[tuple[asyncio.DatagramTransport, _ReplyCatcher]]] = {}

    async def exchange(self, resolver: Resolver, wire_after_id: bytes) -> tuple[int, bytes]:
        """Send one query (a fresh id in front of `wire_after_id`); returns the id and the reply."""
        opening = self.sockets.get(resolver)
        if opening is None:
            opening = self.sockets[resolver] = asyncio.ensure_future(self._open(resolver))
        transport, catcher = await asyncio.shield(opening)
        query_id = secrets.randbelow(65536)
        while query_id in catcher.pending:
            query_id = secrets.randbelow(65536)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()
        catcher.pending[query_id] = reply
        packet = query_id.to_bytes(2, "big") + wire_after_id
        # A lost datagram is sent again, as stub resolvers do, within the same dns_timeout: on a
        # lossy path one lost packet would otherwise be a dns timeout, a false "dns" verdict.
        delays = iter(RETRANSMIT_AFTER)
        resend: asyncio.TimerHandle | None = None

        def send() -> None:
            nonlocal resend
            if reply.done():
                return
            transport.sendto(packet)
            delay = next(delays, None)
            resend = loop.call_later(delay, send) if delay is not None else None

        try:
            send()
            return query_id, await reply
        finally:
            if resend is not None:
                resend.cancel()
            del catcher.pending[query_id]

    async def _open(self, resolver: Resolver) -> tuple[asyncio.DatagramTransport, _ReplyCatcher]:
        loop = asyncio.get_running_loop()
        local_addr = (self.source_address, 0) if self.source_address else None
        transport, catcher = await loop.create_datagram_endpoint(
            _ReplyCatcher, remote_addr=(resolver.ip, resolver.port), local_addr=local_addr
        )
        return transport, catcher

    def close(self) -> None:
        for opening in self.sockets.values():
            if not opening.done():
                opening.cancel()
            elif not opening.cancelled() and opening.exception() is None:
                opening.result()[0].close()
        self.sockets.clear()


def _record_response(entry: DnsQuery, reply: Reply, query_type: QueryType) -> None:
    rcode = reply.rcode
    # OONI df-002: the rcode is the integer of the reply (0 = NOERROR, 3 = NXDOMAIN).
    entry["rcode"] = int(rcode)
    if rcode in _RCODE_FAILURES:
        entry["failure"] = _RCODE_FAILURES[rcode]
        return
    if rcode != dns.rcode.NOERROR:
        entry["failure"] = "dns_server_misbehaving"
        return
    wanted = TYPE_A if query_type == "A" else TYPE_AAAA
    answers: list[DnsAnswer] = []
    found = False
    for record_type, ttl, values in reply.rrsets:
        for value in values:
            if record_type == TYPE_CNAME:
                answers.append({"answer_type": "CNAME", "hostname": value, "ttl": ttl})
            elif record_type == wanted:
                found = True
                if query_type == "A":
                    answers.append({"answer_type": "A", "ipv4": value, "ttl": ttl})
                else:
                    answers.append({"answer_type": "AAAA", "ipv6": value, "ttl": ttl})
    entry["answers"] = answers
    if not found:
        entry["failure"] = "dns_no_answer"
