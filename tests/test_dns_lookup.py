"""The DNS lookup's socket handling against real UDP servers on loopback: what it ignores, and that
it leaves no socket open however it ends."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import dns.message
import dns.rrset
import pytest

from probes.dns import probe_dns
from probes.options import ProbeOptions

LOOPBACK = "127.0.0.1"
OPTIONS = ProbeOptions(dns_timeout=2.0)


class _Server(asyncio.DatagramProtocol):
    """Answers A with 127.0.0.5 (NODATA for AAAA); first sends a reply with the wrong id and a
    forged one from another port, which the lookup must ignore; or stays silent."""

    def __init__(self, *, silent: bool = False) -> None:
        self.silent = silent
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0
        self.forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.forger.bind((LOOPBACK, 0))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.queries += 1
        if self.silent:
            return
        query = dns.message.from_wire(data)
        forged = dns.message.make_response(query)
        forged.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "10.6.6.6"))
        self.forger.sendto(forged.to_wire(), addr)  # the right id, but from another port
        forged.id = (query.id + 1) % 65536
        self.transport.sendto(forged.to_wire(), addr)  # the right server, but another id
        response = dns.message.make_response(query)
        if query.question[0].rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.0.5"))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, _Server]]:
    silent = getattr(request, "param", False)
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Server(silent=silent), local_addr=(LOOPBACK, 0)
    )
    yield f"{LOOPBACK}:{transport.get_extra_info('sockname')[1]}", protocol
    transport.close()
    protocol.forger.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _settle() -> None:
    # asyncio's transports close their socket one loop iteration after close().
    for _ in range(3):
        await asyncio.sleep(0)


async def test_replies_with_a_wrong_id_or_from_another_port_are_ignored(server):
    address, _ = server
    queries = await probe_dns("www.ok.test", replace(OPTIONS, resolvers=(address,)))
    assert queries[0]["answers"] == [{"answer_type": "A", "ipv4": "127.0.0.5", "ttl": 60}]
    assert [q["failure"] for q in queries] == [None, "dns_no_answer"]


@pytest.mark.parametrize("server", [True], indirect=True)
async def test_a_cancelled_lookup_closes_its_socket(server):
    address, protocol = server
    before = _open_fds()
    lookup = asyncio.ensure_future(probe_dns("www.ok.test", replace(OPTIONS, resolvers=(address,))))
    while protocol.queries < 2:
        await asyncio.sleep(0.01)
    assert len(_open_fds() - before) == 1  # one socket for both queries
    lookup.cancel()
    with pytest.raises(asyncio.CancelledError):
        await lookup
    await _settle()
    assert _open_fds() - before == set()


@pytest.mark.parametrize("server", [True], indirect=True)
async def test_a_timed_out_lookup_closes_its_sockets(server):
    address, _ = server
    before = _open_fds()
    options = replace(OPTIONS, resolvers=(address, address), dns_timeout=0.2)
    queries = await probe_dns("www.ok.test", options)
    assert [q["failure"] for q in queries] == ["generic_timeout_error"] * 2
    await _settle()
    assert _open_fds() - before == set()


async def test_a_name_that_is_no_dns_name_raises_and_opens_nothing(server):
    from probes.errors import InvalidInput

    address, protocol = server
    before = _open_fds()
    with pytest.raises(InvalidInput):
        await probe_dns("a..b", replace(OPTIONS, resolvers=(address,)))
    assert _open_fds() - before == set() and protocol.queries == 0
