"""The wire reader for common DNS replies agrees with dnspython, and leaves it the rest."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from probes.dns_wire import query_template, read_reply, reply_from_message
from probes.errors import InvalidInput


def _query(name: str = "www.Site.test", query_type: str = "A") -> dns.message.QueryMessage:
    query = dns.message.make_query(name, query_type)
    query.flags |= dns.flags.RD
    return query


def _question(query: dns.message.Message) -> bytes:
    return query.to_wire()[12:]


def _reply(query: dns.message.Message, *records: tuple[str, int, str, str], rcode: int = 0) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    for owner, ttl, record_type, value in records:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", record_type, value))
    return response.to_wire()  # dnspython compresses names, as servers do


A_QUERY = _query()
AAAA_QUERY = _query(query_type="AAAA")
CASES = [
    (A_QUERY, [("www.site.test.", 60, "A", "127.0.0.5")]),
    # A CNAME chain; the A records split over two rrsets of one owner, TTLs and a duplicate differ.
    (
        A_QUERY,
        [
            ("www.site.test.", 300, "CNAME", "Edge-1.cdn_x.test."),
            ("edge-1.cdn_x.test.", 60, "A", "10.0.0.1"),
            ("edge-1.cdn_x.test.", 30, "A", "10.0.0.2"),
            ("EDGE-1.cdn_x.test.", 90, "A", "10.0.0.1"),
        ],
    ),
    (AAAA_QUERY, [("www.site.test.", 60, "AAAA", "2001:db8::1"), ("www.site.test.", 60, "AAAA", "::ffff:1.2.3.4")]),
    (AAAA_QUERY, [("www.site.test.", 60, "A", "127.0.0.1")]),  # the other type: recorded as no answer
    (A_QUERY, []),
]


@pytest.mark.parametrize(("query", "records"), CASES)
def test_common_replies_read_as_dnspython_reads_them(query, records):
    wire = _reply(query, *records)
    reply = read_reply(wire, _question(query))
    assert reply is not None  # the fast path took it
    assert reply == reply_from_message(dns.message.from_wire(wire))


def test_rcode_without_records():
    wire = _reply(A_QUERY, rcode=dns.rcode.SERVFAIL)
    assert read_reply(wire, _question(A_QUERY)).rcode == dns.rcode.SERVFAIL


@pytest.mark.parametrize(
    "change",
    [
        "truncated",
        "not a response",
        "other question",
        "authority section",
        "escaped name",
        "other type",
        "trailing junk",
    ],
)
def test_unusual_replies_are_left_to_dnspython(change):
    query, records = A_QUERY, [("www.site.test.", 60, "A", "127.0.0.5")]
    if change == "other question":
        query = _query("other.test")
    if change == "escaped name":
        records = [("www.site.test.", 60, "CNAME", "we\\.ird.test."), ("we\\.ird.test.", 60, "A", "127.0.0.5")]
    if change == "other type":
        records = [("www.site.test.", 60, "TXT", '"hello"')]
    response = dns.message.from_wire(_reply(query, *records))
    if change == "truncated":
        response.flags |= dns.flags.TC
    if change == "not a response":
        response.flags &= ~dns.flags.QR
    if change == "authority section":
        response.authority.append(dns.rrset.from_text("site.test.", 60, "IN", "NS", "ns.site.test."))
    wire = response.to_wire() + (b"\x00" if change == "trailing junk" else b"")
    assert read_reply(wire, _question(A_QUERY)) is None


def test_every_cut_short_reply_is_left_to_dnspython():
    wire = _reply(A_QUERY, ("www.site.test.", 300, "CNAME", "edge.test."), ("edge.test.", 60, "A", "10.0.0.1"))
    for length in range(len(wire)):
        assert read_reply(wire[:length], _question(A_QUERY)) is None


def test_forward_or_looping_pointers_are_left_to_dnspython():
    wire = bytearray(_reply(A_QUERY, ("www.site.test.", 60, "A", "127.0.0.5")))
    answer_start = 12 + len(_question(A_QUERY))
    assert wire[answer_start] & 0xC0 == 0xC0  # the owner is a pointer to the question's name
    wire[answer_start + 1] = answer_start  # now it points at itself
    assert read_reply(bytes(wire), _question(A_QUERY)) is None


def test_a_ttl_with_the_top_bit_set_reads_as_zero_like_dnspython():
    # RFC 2181 section 8: such a TTL is treated as zero; the two readers must record the same.
    wire = bytearray(_reply(A_QUERY, ("www.site.test.", 60, "A", "127.0.0.5")))
    ttl_at = 12 + len(_question(A_QUERY)) + 2 + 4  # after the owner pointer, type and class
    wire[ttl_at : ttl_at + 4] = (0x8000003C).to_bytes(4, "big")
    reply = read_reply(bytes(wire), _question(A_QUERY))
    assert reply is not None and reply.rrsets[0][1] == 0
    assert reply == reply_from_message(dns.message.from_wire(bytes(wire)))


def test_a_pointer_whose_target_runs_over_the_name_is_left_to_dnspython():
    # A CNAME and two A records; the last owner (c0 3a) points into the previous record's
    # address, whose byte 6 starts a label running over that very pointer. dnspython calls
    # the reply malformed (the target must end before the pointing name): so must this reader.
    wire = bytes.fromhex(
        "824b81000001000300000000076578616d706c6503636f6d0000010001"
        "c00c000500010000003c00040162c00c"
        "c029000100010000003c000405060708"
        "c03a000100010000003c000401020304"
    )
    question = dns.message.make_query("example.com", "A").to_wire()[12:]
    with pytest.raises(dns.exception.FormError):
        dns.message.from_wire(wire)
    assert read_reply(wire, question) is None


@pytest.mark.parametrize("hostname", ["site1.bulk.test", "WWW.Example.ORG.", "a-b_c.d", "xn--e1aybc.test", "x" * 63 + ".kz"])
@pytest.mark.parametrize("query_type", ["A", "AAAA"])
def test_a_plain_name_query_is_written_as_dnspython_writes_it(hostname: str, query_type: str) -> None:
    query = dns.message.make_query(dns.name.from_text(hostname), query_type)
    query.flags |= dns.flags.RD
    assert query_template(hostname, query_type) == query.to_wire()[2:]  # type: ignore[arg-type]


@pytest.mark.parametrize("hostname", ["a..b", "x" * 64 + ".kz", ".".join(["abcdefgh"] * 40)])
def test_an_invalid_name_is_still_refused_naming_it(hostname: str) -> None:
    with pytest.raises(InvalidInput, match="is not a valid DNS name"):
        query_template(hostname, "A")
