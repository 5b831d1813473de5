"""DNS step: A and AAAA lookups recorded as OONI df-002 query entries, failures as strings."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.asyncquery
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver

from probes.bogons import is_ip_address
from probes.dns_wire import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    Reply,
    query_template,
    read_reply,
    reply_from_message,
)
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
        query_template(hostname, "A")
    except InvalidInput:
        return False
    return True


async def probe_dns(hostname: str, options: ProbeOptions, *, started: float | None = None) -> list[DnsQuery]:
    """Ask for A and AAAA concurrently; an IP literal needs no query and yields []."""
    if is_ip_literal(hostname):
        return []
    started = time.monotonic() if started is None else started
    # A and AAAA go out together from one socket per resolver, as the glibc stub resolver sends them.
    lookup = _Lookup(hostname, resolvers_for(options), options, started)
    try:
        return await lookup.run()
    finally:
        lookup.close()


def _new_entry(hostname: str, query_type: QueryType, resolvers: tuple[Resolver, ...], started: float) -> DnsQuery:
    t0 = round(time.monotonic() - started, 6)
    return {
        "hostname": hostname,
        "query_type": query_type,
        "engine": resolvers[0].engine if resolvers else "system",
        "resolver_address": resolvers[0].address if resolvers else "",
        "failure": None,
        "rcode": None,
        "answers": [],
        "t0": t0,
        "t": t0,  # the end, set when the query is over
    }


def _reply_from_dnspython(query_id: int, wire_after_id: bytes, wire: bytes) -> Reply | None:
    """The reply read by dnspython, which also judges it; None when truncated (ask over TCP)."""
    response = dns.message.from_wire(wire)
    if not _is_response(query_id, wire_after_id, response):
        raise dns.query.BadResponse
    if response.flags & dns.flags.TC:
        return None
    return reply_from_message(response)


async def _ask_over_tcp(query_id: int, wire_after_id: bytes, resolver: Resolver, options: ProbeOptions) -> Reply:
    # Too big for UDP: ask again over TCP, as a stub resolver does.
    query = dns.message.from_wire(query_id.to_bytes(2, "big") + wire_after_id)
    response = await dns.asyncquery.tcp(
        query, resolver.ip, timeout=options.dns_timeout, port=resolver.port, source=options.source_address
    )
    return reply_from_message(response)


def _is_response(query_id: int, wire_after_id: bytes, response: dns.message.Message) -> bool:
    # dnspython's own check, against the query as sent (rebuilt only for replies read this way).
    return dns.message.from_wire(query_id.to_bytes(2, "big") + wire_after_id).is_response(response)


# Seconds after the first send, then after that resend, to send a UDP query again (same id): the
# answer to any copy counts. glibc sends again only after its whole 5 s timeout.
RETRANSMIT_AFTER = (1.0, 2.0)


# Larger than any UDP payload (65,527 bytes over IPv6): a reply is never cut short.
_MAX_DATAGRAM = 65535


@dataclass(slots=True, eq=False)
class _Channel:
    """A connected non-blocking UDP socket to one resolver, and its queries waiting by id."""

    sock: socket.socket
    pending: dict[int, _Question] = field(default_factory=dict)


@dataclass(slots=True, eq=False)  # identity: a query leaves its attempt by `remove`
class _Question:
    """One query type's way through the resolvers: its entry, and its current attempt's state."""

    query_type: QueryType
    entry: DnsQuery
    wire_after_id: bytes = b""
    query_id: int = 0
    packet: bytes = b""
    channel: _Channel | None = None
    attempt: _Attempt | None = None


@dataclass(slots=True, eq=False)
class _Attempt:
    """The queries sent together to one resolver: they share the resend and deadline timers."""

    resolver_index: int
    questions: list[_Question] = field(default_factory=list)
    sends: int = 0
    deadline: asyncio.TimerHandle | None = None
    resend: asyncio.TimerHandle | None = None


class _Lookup:
    """The A and AAAA queries of one lookup, driven by loop callbacks rather than tasks.

    Leaner than dnspython's async backend or asyncio's datagram transports, which cost more
    than the query itself at the throughput the engine aims for. Each lookup gets fresh sockets
    (a random source port), one per resolver shared by both types, and each query a random id.
    Like the system stub resolver, a query tries the next server when one does not answer,
    cannot be reached or answers garbage; an answer (even NXDOMAIN) is final. The entry records
    the last server asked.
    """

    def __init__(self, hostname: str, resolvers: tuple[Resolver, ...], options: ProbeOptions, started: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.hostname = hostname
        self.resolvers = resolvers
        self.options = options
        self.started = started
        # A socket per resolver, or the error that opening it raised (both types then get it).
        self.channels: dict[Resolver, _Channel | Exception] = {}
        self.questions = (_Question("A", _new_entry(hostname, "A", resolvers, started)),
                          _Question("AAAA", _new_entry(hostname, "AAAA", resolvers, started)))
        self.unfinished = len(self.questions)
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.tcp_tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> list[DnsQuery]:
        if self.resolvers:
            self._try(list(self.questions), 0)
        else:
            for question in self.questions:
                question.entry["failure"] = "dns_server_misbehaving"
                self._finish(question)
        if self.unfinished:
            await self.finished
        return [question.entry for question in self.questions]

    def close(self) -> None:
        for question in self.questions:
            self._leave(question)
        for channel in self.channels.values():
            if isinstance(channel, _Channel):
                self.loop.remove_reader(channel.sock.fileno())
                channel.sock.close()
        self.channels.clear()
        for task in self.tcp_tasks:
            task.cancel()

    # ------------------------------------------------------------ one attempt per resolver

    def _try(self, questions: list[_Question], index: int) -> None:
        """Send `questions` to resolver `index` (the time it has starts now)."""
        resolver = self.resolvers[index]
        address = resolver.address
        for question in questions:
            question.entry["engine"], question.entry["resolver_address"] = resolver.engine, address
            if not question.wire_after_id:
                question.wire_after_id = query_template(self.hostname, question.query_type)
        try:
            channel = self._channel(resolver)
        except NETWORK_ERRORS as error:
            self._failed(questions, index, error)
            return
        attempt = _Attempt(index)
        attempt.deadline = self.loop.call_later(self.options.dns_timeout, self._timed_out, attempt)
        # Random ids from the system's CSPRNG, as secrets draws them: one read for all the queries.
        random_ids = os.urandom(2 * len(questions))
        for position, question in enumerate(questions):
            query_id = int.from_bytes(random_ids[2 * position : 2 * position + 2], "big")
            while query_id in channel.pending:
                query_id = int.from_bytes(os.urandom(2), "big")
            question.query_id, question.channel, question.attempt = query_id, channel, attempt
            question.packet = query_id.to_bytes(2, "big") + question.wire_after_id
            channel.pending[query_id] = question
            attempt.questions.append(question)
        self._send(attempt, channel)

    def _channel(self, resolver: Resolver) -> _Channel:
        channel = self.channels.get(resolver)
        if channel is None:
            try:
                channel = self.channels[resolver] = self._open(resolver)
            except Exception as error:
                self.channels[resolver] = error
                raise
        if isinstance(channel, Exception):
            raise channel
        return channel

    def _open(self, resolver: Resolver) -> _Channel:
        source = self.options.source_address
        family = socket.AF_INET6 if ":" in resolver.ip else socket.AF_INET
        if source and _ip_family(source) not in (None, family):
            raise ValueError("can not get address information")  # as asyncio's datagram endpoint
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if source:
                sock.bind((source, 0))
            sock.connect((resolver.ip, resolver.port))
            channel = _Channel(sock)
            self.loop.add_reader(sock.fileno(), self._readable, channel)
        except BaseException:
            sock.close()
            raise
        return channel

    def _send(self, attempt: _Attempt, channel: _Channel) -> None:
        for question in attempt.questions:
            try:
                channel.sock.send(question.packet)
            except (BlockingIOError, InterruptedError):
                pass  # no room in the socket's buffer: as a lost datagram, the next copy may pass
            except OSError as error:
                self._socket_failed(channel, error)
                return
        # A lost datagram is sent again, as stub resolvers do, within the same dns_timeout: on a
        # lossy path one lost packet would otherwise be a dns timeout, a false "dns" verdict.
        if attempt.sends < len(RETRANSMIT_AFTER):
            attempt.resend = self.loop.call_later(RETRANSMIT_AFTER[attempt.sends], self._resend, attempt, channel)
        attempt.sends += 1

    def _leave(self, question: _Question) -> None:
        """End the question's attempt for it; the attempt's timers stop with its last question."""
        if question.channel is not None:
            question.channel.pending.pop(question.query_id, None)
            question.channel = None
        attempt, question.attempt = question.attempt, None
        if attempt is None:
            return
        attempt.questions.remove(question)
        if attempt.questions:
            return
        # Cancelling clears each handle's reference to the attempt: no cycle outlives the lookup.
        if attempt.deadline is not None:
            attempt.deadline.cancel()
            attempt.deadline = None
        if attempt.resend is not None:
            attempt.resend.cancel()
            attempt.resend = None

    # ------------------------------------------------------------ loop callbacks

    def _resend(self, attempt: _Attempt, channel: _Channel) -> None:
        attempt.resend = None
        self._guarded(self._send, attempt, channel)

    def _timed_out(self, attempt: _Attempt) -> None:
        attempt.deadline = None
        questions = list(attempt.questions)
        for question in questions:
            self._leave(question)
        self._guarded(self._failed, questions, attempt.resolver_index, TimeoutError())

    def _readable(self, channel: _Channel) -> None:
        try:
            wire = channel.sock.recv(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            # An ICMP port unreachable comes back as ConnectionRefusedError on the connected socket.
            self._guarded(self._socket_failed, channel, error)
            return
        question = channel.pending.get(int.from_bytes(wire[:2], "big")) if len(wire) >= 2 else None
        if question is not None:
            self._guarded(self._answered, question, wire)

    def _guarded(self, step: Callable[..., None], *arguments: object) -> None:
        try:
            step(*arguments)
        except Exception as bug:  # noqa: BLE001 - handed to the awaiting probe_dns, which raises it
            if not self.finished.done():
                self.finished.set_exception(bug)

    # ------------------------------------------------------------ outcomes

    def _socket_failed(self, channel: _Channel, error: OSError) -> None:
        # Every query waiting on the socket gets the error, as asyncio's error_received gave it.
        questions = list(channel.pending.values())
        if not questions:
            return
        attempt = questions[0].attempt
        assert attempt is not None
        index = attempt.resolver_index
        for question in questions:
            self._leave(question)
        self._failed(questions, index, error)

    def _answered(self, question: _Question, wire: bytes) -> None:
        attempt = question.attempt
        assert attempt is not None
        query_id, wire_after_id, index = question.query_id, question.wire_after_id, attempt.resolver_index
        self._leave(question)
        # The header after the id is 10 bytes; the question follows.
        reply = read_reply(wire, wire_after_id[10:])
        if reply is None:
            try:
                reply = _reply_from_dnspython(query_id, wire_after_id, wire)
            except NETWORK_ERRORS as error:
                self._failed([question], index, error)
                return
            if reply is None:
                task = self.loop.create_task(self._over_tcp(question, query_id, index))
                self.tcp_tasks.add(task)
                task.add_done_callback(self.tcp_tasks.discard)
                return
        self._succeeded(question, reply)

    async def _over_tcp(self, question: _Question, query_id: int, index: int) -> None:
        try:
            try:
                reply = await _ask_over_tcp(query_id, question.wire_after_id, self.resolvers[index], self.options)
            except NETWORK_ERRORS as error:
                self._failed([question], index, error)
                return
            self._succeeded(question, reply)
        except Exception as bug:  # noqa: BLE001 - as in _guarded
            if not self.finished.done():
                self.finished.set_exception(bug)

    def _succeeded(self, question: _Question, reply: Reply) -> None:
        question.entry["failure"] = None
        _record_response(question.entry, reply, question.query_type)
        self._finish(question)

    def _failed(self, questions: list[_Question], index: int, error: BaseException) -> None:
        """`questions` failed at resolver `index`: on to the next one, if any."""
        if not questions:
            return
        failure = classify_failure(error)
        for question in questions:
            question.entry["failure"] = failure
        if index + 1 < len(self.resolvers):
            self._try(questions, index + 1)
            return
        for question in questions:
            self._finish(question)

    def _finish(self, question: _Question) -> None:
        question.entry["t"] = round(time.monotonic() - self.started, 6)
        self.unfinished -= 1
        if not self.unfinished and not self.finished.done():
            self.finished.set_result(None)


@functools.lru_cache(maxsize=64)
def _ip_family(address: str) -> int | None:
    """The socket family of an IP literal; None for a host name (the kernel's lookup decides)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return None


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
