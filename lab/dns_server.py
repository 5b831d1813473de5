"""The lab's two authoritative resolvers (honest and censored), over UDP and TCP on port 53."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from lab.policies import DnsPlan

TTL = 60
# hostname -> plan for an A query, or None when the lab knows no such name.
PlanLookup = Callable[[str], DnsPlan | None]


_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")
_ANSWER_A = struct.Struct("!HHHIH")  # name pointer to the question, type, class, TTL, length
_NOT_PLAIN = object()
_TYPE_A, _CLASS_IN = 1, 1
_FLAG_QR, _FLAG_AA, _FLAG_RD = 0x8000, 0x0400, 0x0100
_RCODES = {"nxdomain": 3, "servfail": 2}


def build_dns_response(query_wire: bytes, plan_for: PlanLookup) -> bytes | None:
    """The wire answer to one query, or None to stay silent (dns.timeout, or unparsable input)."""
    # Plain queries (one question, no EDNS) are answered on the wire, the same bytes dnspython
    # writes: building every answer with dnspython was a tenth of the lab's CPU per measurement.
    plain = _plain_response(query_wire, plan_for)
    if plain is not _NOT_PLAIN:
        return plain  # type: ignore[return-value]
    return _dnspython_response(query_wire, plan_for)


def _plain_response(query_wire: bytes, plan_for: PlanLookup) -> bytes | None | object:
    if len(query_wire) < _HEADER.size + 5:
        return _NOT_PLAIN
    query_id, flags, questions, answers, authority, additional = _HEADER.unpack_from(query_wire)
    # A query (QR clear, opcode 0, no rcode bits), one question, nothing else.
    if flags & 0xF80F or questions != 1 or answers or authority or additional:
        return _NOT_PLAIN
    labels, position = [], _HEADER.size
    while True:
        length = query_wire[position]
        position += 1
        if length == 0:
            break
        label = query_wire[position : position + length]
        if length > 63 or len(label) != length or not label.isascii() or not label.replace(b"-", b"").isalnum():
            return _NOT_PLAIN  # compression, escapes or odd bytes: dnspython knows those
        labels.append(label)
        position += length
        if position >= len(query_wire):
            return _NOT_PLAIN
    if position + _QUESTION_TAIL.size != len(query_wire) or not labels:
        return _NOT_PLAIN
    query_type, query_class = _QUESTION_TAIL.unpack_from(query_wire, position)
    plan = plan_for(b".".join(labels).decode("ascii").lower())
    kind = "nxdomain" if plan is None else plan.kind
    if kind == "silence":
        return None
    if kind not in ("answer", "nxdomain", "servfail") or (plan is not None and len(plan.addresses) > 1):
        return _NOT_PLAIN  # several addresses: dnspython orders its rdataset its own way
    reply_flags = _FLAG_QR | _FLAG_AA | (flags & _FLAG_RD) | _RCODES.get(kind, 0)
    if kind == "servfail":
        reply_flags &= ~_FLAG_AA
    records = b""
    if kind == "answer" and query_type == _TYPE_A and query_class == _CLASS_IN and plan is not None:
        records = b"".join(
            _ANSWER_A.pack(0xC00C, _TYPE_A, _CLASS_IN, TTL, 4) + socket.inet_aton(address)
            for address in plan.addresses
        )
    header = _HEADER.pack(query_id, reply_flags, 1, len(records) // 14, 0, 0)
    return header + query_wire[_HEADER.size :] + records


def _dnspython_response(query_wire: bytes, plan_for: PlanLookup) -> bytes | None:
    try:
        query = dns.message.from_wire(query_wire)
        response = dns.message.make_response(query)  # FormError for a message that is no query
    except dns.exception.DNSException:
        return None
    response.flags |= dns.flags.AA
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    hostname = question.name.to_text(omit_final_dot=True).lower()
    plan = plan_for(hostname)
    if plan is None or plan.kind == "nxdomain":
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif plan.kind == "servfail":
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.SERVFAIL)
    elif plan.kind == "silence":
        return None
    elif question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
        response.answer.append(
            dns.rrset.from_text_list(question.name, TTL, "IN", "A", list(plan.addresses))
        )
    # Other types for a known name: NOERROR with no answer (NODATA), as for a v4-only site.
    return response.to_wire()


class _UdpResolver(asyncio.DatagramProtocol):
    def __init__(self, plan_for: PlanLookup) -> None:
        self._plan_for = plan_for
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = build_dns_response(data, self._plan_for)
        if answer is not None and self._transport is not None:
            self._transport.sendto(answer, addr)


async def _serve_tcp_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    plan_for: PlanLookup,
    open_writers: set[asyncio.StreamWriter],
) -> None:
    open_writers.add(writer)
    try:
        while True:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            answer = build_dns_response(await reader.readexactly(length), plan_for)
            if answer is None:
                # Silent resolver: hold the connection and answer nothing, like a dropped query.
                await reader.read()
                return
            writer.write(struct.pack("!H", len(answer)) + answer)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        open_writers.discard(writer)
        writer.close()


class DnsServer:
    """One resolver address: a UDP endpoint on an already-bound socket plus a TCP listener."""

    def __init__(self, udp_socket: socket.socket, plan_for: PlanLookup) -> None:
        self._udp_socket = udp_socket
        self._plan_for = plan_for
        self._udp_transport: asyncio.BaseTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self._udp_socket.getsockname()[:2]
        self._udp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpResolver(self._plan_for), sock=self._udp_socket
        )
        self._tcp_server = await asyncio.start_server(
            lambda r, w: _serve_tcp_client(r, w, self._plan_for, self._tcp_writers),
            host,
            port,
            reuse_address=True,
        )

    async def stop(self) -> None:
        if self._udp_transport is not None:
            self._udp_transport.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
            # Silent TCP clients hold their handlers open; close them rather than wait.
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp_server.wait_closed()


def bind_udp(address: str, port: int = 53) -> socket.socket:
    """Bind a UDP socket; raises OSError (EADDRINUSE) when another lab owns this address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
