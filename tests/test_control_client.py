"""The probe's control client against real loopback HTTP servers: keep-alive, retry, hooks, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes.control_client import ControlClient

LOOPBACK = "127.0.0.1"


class Helper:
    """An aiohttp server that answers POST / with the JSON it got, counting its connections."""

    def __init__(self) -> None:
        self.connections: set[tuple[str, int]] = set()
        self.bodies: list[dict] = []
        self.close_after_answer = False
        self.chunked = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The client's address and port name the connection (an id() may be reused once freed).
        self.connections.add(request.transport.get_extra_info("peername"))
        self.bodies.append(await request.json())
        headers = {"Connection": "close"} if self.close_after_answer else {}
        if self.chunked:
            response = web.StreamResponse(headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b'{"echo": ', json.dumps(self.bodies[-1]).encode(), b"}"):
                await response.write(part)
            await response.write_eof()
            return response
        return web.json_response({"echo": self.bodies[-1]}, headers=headers)


@pytest.fixture
async def helper() -> AsyncIterator[tuple[Helper, str, TestServer]]:
    state = Helper()
    app = web.Application()
    app.router.add_post("/", state.handle)
    server = TestServer(app, host=LOOPBACK)
    await server.start_server()
    try:
        yield state, f"http://{LOOPBACK}:{server.port}/", server
    finally:
        await server.close()


async def _post(client: ControlClient, url: str, n: int) -> dict:
    reply = await client.post(url, json.dumps({"n": n}).encode(), {"Content-Type": "application/json"},
                              timeout=5, limit=1 << 20)
    assert reply.status == 200 and not reply.oversized
    return json.loads(reply.body)


async def test_sequential_posts_share_one_kept_alive_connection(helper) -> None:
    state, url, _ = helper
    async with ControlClient() as client:
        answers = [await _post(client, url, n) for n in range(3)]
    assert answers == [{"echo": {"n": n}} for n in range(3)]
    assert len(state.connections) == 1


async def test_concurrent_posts_open_a_connection_each_and_keep_them(helper) -> None:
    state, url, _ = helper
    async with ControlClient(max_idle=2) as client:
        await asyncio.gather(*(_post(client, url, n) for n in range(4)))
        assert len(state.connections) == 4
        kept = sum(len(idle) for idle in client._idle.values())
        assert kept == 2  # the bound: the others were closed after their answer
        await asyncio.gather(*(_post(client, url, n) for n in range(2)))
    assert len(state.connections) == 4  # the two kept ones served the next two


async def test_a_connection_the_helper_closed_is_retried_on_a_new_one(helper) -> None:
    state, url, server = helper
    async with ControlClient() as client:
        await _post(client, url, 1)
        # The helper drops its idle keep-alive connections (as on its keep-alive timeout) ...
        for handler_protocol in list(server.runner.server.connections):  # type: ignore[union-attr]
            handler_protocol.transport.close()
        await asyncio.sleep(0.05)
        # ... and the next POST still gets its answer, over a second connection.
        assert await _post(client, url, 2) == {"echo": {"n": 2}}
    assert len(state.connections) == 2


async def test_connection_close_from_the_helper_is_not_kept(helper) -> None:
    state, url, _ = helper
    state.close_after_answer = True
    async with ControlClient() as client:
        await _post(client, url, 1)
        assert sum(len(idle) for idle in client._idle.values()) == 0
        await _post(client, url, 2)
    assert len(state.connections) == 2


async def test_a_chunked_answer_is_read_whole(helper) -> None:
    state, url, _ = helper
    state.chunked = True
    async with ControlClient() as client:
        assert await _post(client, url, 7) == {"echo": {"n": 7}}


async def test_every_answer_s_headers_go_to_the_hook_in_lower_case(helper) -> None:
    _, url, _ = helper
    seen: list[dict[str, str]] = []
    async with ControlClient(on_answer=lambda headers: seen.append(dict(headers))) as client:
        await _post(client, url, 1)
        await _post(client, url, 2)
    assert len(seen) == 2
    assert all("date" in headers and headers["content-type"].startswith("application/json") for headers in seen)


async def test_an_answer_past_the_limit_is_cut_and_said_to_be(helper) -> None:
    _, url, _ = helper
    async with ControlClient() as client:
        reply = await client.post(url, json.dumps({"pad": "x" * 5000}).encode(),
                                  {"Content-Type": "application/json"}, timeout=5, limit=1000)
    assert reply.oversized and len(reply.body) == 1000


async def test_a_helper_that_never_answers_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ControlClient() as client:
            with pytest.raises(TimeoutError):
                await client.post(f"http://{LOOPBACK}:{port}/", b"{}", {}, timeout=0.3, limit=1000)
    finally:
        server.close()
