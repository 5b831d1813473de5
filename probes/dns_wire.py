"""Write DNS queries and read the common reply (A, AAAA, CNAME answers only) on the wire; pure.

dnspython's parser costs ~0.1 ms a reply, a tenth of a measurement's CPU at the engine's
throughput. Replies this reader does not fully understand (authority or additional records,
other types, escapes, truncation, odd compression) are left to dnspython: it returns None and
never decides that a reply is bad.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.ipv4
import dns.ipv6
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from probes.errors import InvalidInput
from probes.measurement_types import QueryType

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
_CLASS_IN = 1
_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")
_QR = 0x8000
_OPCODE_MASK = 0x7800
_TC = 0x0200
_MAX_NAME_LENGTH = 255
_MAX_POINTER_CHAIN = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN
# Bytes that dnspython writes in a name's text as they are (anything else would be escaped).
_PLAIN_LABEL_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True, slots=True)
class Reply:
    """A DNS reply as the DNS step records it: the rcode and the answer RRsets in order.

    Each RRset is (type, ttl, values): an address for A/AAAA, a target name without the final
    dot for CNAME. Records of one owner and type form one RRset with the lowest TTL, duplicates
    dropped, as dnspython reads them.
    """

    rcode: int
    rrsets: tuple[tuple[int, int, tuple[str, ...]], ...]


def read_reply(wire: bytes, question: bytes) -> Reply | None:
    """The reply to the query whose question section is `question`, or None for dnspython."""
    if len(wire) < _HEADER.size:
        return None
    _, flags, question_count, answer_count, authority_count, additional_count = _HEADER.unpack_from(wire)
    if (
        not flags & _QR
        or flags & (_OPCODE_MASK | _TC)
        or question_count != 1
        or authority_count
        or additional_count
    ):
        return None
    position = _HEADER.size + len(question)
    # Names compare case-blind; label length bytes (< 64) are never letters, so lower() is safe.
    if wire[_HEADER.size : position].lower() != question.lower():
        return None
    # RRsets in order of first appearance: index by (owner, type), then type, TTL and values.
    index: dict[tuple[bytes, int], int] = {}
    rrsets: list[tuple[int, int, list[str]]] = []
    for _ in range(answer_count):
        owner = _read_name(wire, position)
        if owner is None:
            return None
        labels, position = owner
        if position + _RECORD.size > len(wire):
            return None
        record_type, record_class, ttl, length = _RECORD.unpack_from(wire, position)
        position += _RECORD.size
        if ttl & 0x80000000:
            ttl = 0  # RFC 2181 section 8, as dnspython reads it
        end = position + length
        if record_class != _CLASS_IN or end > len(wire):
            return None
        value = _read_value(wire, position, end, record_type)
        if value is None:
            return None
        position = end
        key = (b".".join(labels).lower(), record_type)
        if key not in index:
            index[key] = len(rrsets)
            rrsets.append((record_type, ttl, [value]))
            continue
        _, lowest_ttl, values = rrsets[index[key]]
        rrsets[index[key]] = (record_type, min(lowest_ttl, ttl), values)
        if record_type == TYPE_CNAME:
            if value.lower() != values[0].lower():
                return None  # two CNAMEs for one name: let dnspython judge
        elif value not in values:
            values.append(value)
    if position != len(wire):
        return None
    return Reply(
        rcode=flags & 0x000F,
        rrsets=tuple((record_type, ttl, tuple(values)) for record_type, ttl, values in rrsets),
    )


def _read_value(wire: bytes, start: int, end: int, record_type: int) -> str | None:
    if record_type == TYPE_A and end - start == 4:
        return str(dns.ipv4.inet_ntoa(wire[start:end]))
    if record_type == TYPE_AAAA and end - start == 16:
        return str(dns.ipv6.inet_ntoa(wire[start:end]))
    if record_type == TYPE_CNAME:
        target = _read_name(wire, start)
        if target is None or target[1] != end or not target[0]:
            return None
        labels = target[0]
        if any(not _PLAIN_LABEL_BYTES.issuperset(label) for label in labels):
            return None
        return b".".join(labels).decode("ascii")
    return None


def _read_name(wire: bytes, start: int) -> tuple[list[bytes], int] | None:
    """The labels of the name at `start` and where the record goes on; None if unusual."""
    labels: list[bytes] = []
    position, resume, length_so_far = start, None, 0
    lowest_pointer = start
    # As dnspython: a pointer's target must end before the part of the name that pointed to it.
    segment_start, limit, hops = start, len(wire), 0
    while True:
        if position >= limit:
            return None
        length = wire[position]
        if length == 0:
            position += 1
            break
        if length & 0xC0 == 0xC0:
            if position + 1 >= limit:
                return None
            target = ((length & 0x3F) << 8) | wire[position + 1]
            # Only strictly backward pointers, as dnspython accepts: no loops.
            hops += 1
            if target >= lowest_pointer or hops > _MAX_POINTER_CHAIN:
                return None
            if resume is None:
                resume = position + 2
            limit, segment_start = segment_start, target
            lowest_pointer = position = target
            continue
        if length > 63 or position + 1 + length > limit:
            return None
        labels.append(wire[position + 1 : position + 1 + length])
        length_so_far += length + 1
        if length_so_far + 1 > _MAX_NAME_LENGTH:
            return None
        position += 1 + length
    return labels, resume if resume is not None else position


# A name of plain labels (what validate_url leaves after IDNA): its query is written directly.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
_QUERY_TYPES = {"A": 1, "AAAA": 28}
# The header after the id: RD set, one question, no other records (as dnspython's make_query).
_HEADER_AFTER_ID = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0)


@functools.lru_cache(maxsize=4096)
def query_template(hostname: str, query_type: QueryType) -> bytes:
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
