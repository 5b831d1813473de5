"""The lab resolver's wire-level answers are the bytes dnspython would have written."""

from __future__ import annotations

import dns.flags
import dns.message
import pytest

from lab.dns_server import _NOT_PLAIN, _dnspython_response, _plain_response, build_dns_response
from lab.policies import DnsPlan

PLANS = {
    "a.lab.test": DnsPlan("answer", ("127.1.2.3",)),
    "two.lab.test": DnsPlan("answer", ("127.1.2.3", "127.1.2.4")),
    "nx.lab.test": DnsPlan("nxdomain"),
    "sf.lab.test": DnsPlan("servfail"),
    "si.lab.test": DnsPlan("silence"),
}


@pytest.mark.parametrize("name", ["a.lab.test", "A.Lab.TEST", "nx.lab.test", "sf.lab.test", "unknown.lab.test"])
@pytest.mark.parametrize("query_type", ["A", "AAAA", "TXT"])
@pytest.mark.parametrize("recursion_desired", [True, False])
def test_a_plain_query_gets_dnspythons_bytes(name: str, query_type: str, recursion_desired: bool) -> None:
    query = dns.message.make_query(name, query_type)
    if not recursion_desired:
        query.flags &= ~dns.flags.RD
    wire = query.to_wire()
    fast = _plain_response(wire, PLANS.get)
    assert fast is not _NOT_PLAIN
    assert fast == _dnspython_response(wire, PLANS.get)


def test_silence_edns_and_several_addresses() -> None:
    assert build_dns_response(dns.message.make_query("si.lab.test", "A").to_wire(), PLANS.get) is None
    edns = dns.message.make_query("a.lab.test", "A", use_edns=0).to_wire()
    assert _plain_response(edns, PLANS.get) is _NOT_PLAIN
    assert dns.message.from_wire(build_dns_response(edns, PLANS.get) or b"").answer  # dnspython answered
    two = dns.message.make_query("two.lab.test", "A").to_wire()
    assert _plain_response(two, PLANS.get) is _NOT_PLAIN
    assert _plain_response(b"\x00\x01garbage", PLANS.get) is _NOT_PLAIN


def test_a_reply_sent_to_the_resolver_is_ignored() -> None:
    # A message with QR set is no query: silence, not an exception in the resolver.
    reply = dns.message.make_response(dns.message.make_query("a.lab.test", "A")).to_wire()
    assert build_dns_response(reply, PLANS.get) is None
