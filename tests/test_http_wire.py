"""The fast HTTP/1.1 reader and writer agree with h11 wherever they accept a message.

Differential: generated responses are read by h11 (as a client that sent a GET) and by
probes.http_wire; whenever the fast path accepts one, status, headers, body and keep-alive must
be what h11 says, and h11 must accept it too. Requests likewise, byte for byte.
"""

from __future__ import annotations

import asyncio

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from probes.connection import open_connection
from probes.http_stream import ResponseStream
from probes.http_wire import HEAD_END, encode_request, parse_response_head

_NAME_CHARS = "abcXYZ-_09!~" + ' :\t"(@'
_VALUE_CHARS = "abc xyz/;=,.\t" + ":\x00\x7f\x80\xff\r\n"


def _h11_reading(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None:
    """What h11 reads from `raw` as the answer to a GET, then EOF: None when it refuses."""
    client = h11.Connection(h11.CLIENT, max_incomplete_event_size=256 * 1024)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "site.test")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    client.receive_data(b"")
    status, headers, body = 0, [], bytearray()
    try:
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                status, headers = event.status_code, list(event.headers.raw_items())
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                reusable = client.our_state is h11.DONE and client.their_state is h11.DONE
                return status, headers, bytes(body), reusable
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None


def _fast_reading(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None | str:
    """What the fast path reads ("declined" when it hands the bytes to h11, None: early EOF)."""
    end = raw.find(HEAD_END)
    head = parse_response_head(raw, end) if end >= 0 else None
    if head is None:
        return "declined"
    rest = raw[end + len(HEAD_END):]
    if head.content_length is None:
        return head.status, head.headers, rest, False
    if len(rest) < head.content_length:
        return None  # h11 calls that an incomplete message too
    return head.status, head.headers, rest[: head.content_length], head.keep_alive


status_lines = st.one_of(
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304",
                     b"HTTP/1.1 302 Found", b"HTTP/1.1 100 Continue", b"HTTP/2.0 200 OK", b"HTTP/1.1 200 ",
                     b"HTTP/1.1 99 Odd", b"http/1.1 200 OK", b"HTTP/1.1 404 Not\tFound"]),
    st.binary(max_size=20).map(lambda tail: b"HTTP/1.1 200 " + tail),
)
header_lines = st.one_of(
    st.tuples(st.text(_NAME_CHARS, min_size=0, max_size=8), st.text(_VALUE_CHARS, max_size=12)).map(
        lambda pair: pair[0].encode("latin-1") + b":" + pair[1].encode("latin-1")),
    st.sampled_from([b"Content-Length: 5", b"Content-Length: 0", b"content-length: 3", b"Content-Length: x",
                     b"Content-Length: 5, 5", b"Transfer-Encoding: chunked", b"Connection: close",
                     b"Connection: keep-alive, Close", b" folded", b"\tfolded", b"Server: nginx ",
                     b"X-Empty:", b"X-Empty:   ", b"Set-Cookie: a=b; Path=/"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status_lines, st.lists(header_lines, max_size=6), st.binary(max_size=12))
@example(b"HTTP/1.1 200 OK", [b"Content-Length: 5"], b"hello")
@example(b"HTTP/1.1 200 OK", [b"Content-Length: 5"], b"hel")
@example(b"HTTP/1.0 200 OK", [b"Server: x"], b"until close")
@example(b"HTTP/1.1 204 No Content", [b"Content-Length: 5"], b"")
def test_the_fast_reader_reads_what_h11_reads(status_line, lines, body) -> None:
    raw = b"\r\n".join([status_line, *lines]) + HEAD_END + body
    fast = _fast_reading(raw)
    if fast == "declined":
        return
    reading = _h11_reading(raw)
    if fast is not None and reading is not None and parse_response_head(raw, raw.find(HEAD_END)).content_length is None:
        # A body read until the server closed: the connection has ended whatever h11's states say.
        reading = (*reading[:3], False)
    assert fast == reading, raw


def test_the_fast_reader_takes_the_plain_responses_servers_send() -> None:
    plain = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html; charset=utf-8\r\n"
             b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\nhi")
    head = parse_response_head(plain, plain.find(HEAD_END))
    assert head is not None and head.status == 200 and head.content_length == 2 and head.keep_alive
    assert head.headers[0] == (b"Server", b"nginx")
    for declined in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"HTTP/1.1 100 Continue",
                     b"HTTP/1.1 200 OK\r\nX: a\r\n b"):
        assert parse_response_head(declined + HEAD_END, len(declined)) is None


request_headers = st.lists(
    st.tuples(st.text(_NAME_CHARS, min_size=1, max_size=8), st.text(_VALUE_CHARS.replace("\x80", "é"), max_size=10)),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["GET", "POST", "G T"]), st.sampled_from(["/", "/a?b=c", "/é", "/a b", ""]),
       request_headers, st.booleans())
def test_the_fast_writer_writes_what_h11_writes(method, target, headers, with_host) -> None:
    lines = ([("Host", "site.test")] if with_host else []) + headers
    fast = encode_request(method, target, lines, b"")
    try:
        client = h11.Connection(h11.CLIENT)
        expected = client.send(h11.Request(method=method, target=target, headers=lines))
        expected += client.send(h11.EndOfMessage())
    except (h11.LocalProtocolError, UnicodeEncodeError, ValueError):
        assert fast is None  # h11 refuses it: the caller gets h11's own error
        return
    assert fast is None or fast == expected


# ResponseStream over real loopback connections ------------------------------------------------

async def _serve_once(payload: bytes, *, close: bool = True) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        if close:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _get(payload: bytes) -> tuple[int, bytes, bool]:
    server, port = await _serve_once(payload)
    connection = await open_connection("127.0.0.1", port, limit=65536)
    try:
        stream = ResponseStream(connection, "GET", "/", [("Host", "site.test")])
        await stream.send()
        head = await stream.head()
        body = bytearray()
        while (data := await stream.chunk()) is not None:
            body += data
        return head.status, bytes(body), stream.reusable
    finally:
        connection.abort()
        server.close()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", (200, b"hello", True)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (200, b"hello", True)),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", (201, b"ok", True)),
        (b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end", (200, b"until the end", False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", (200, b"ok", False)),
        (b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 1\r\n\r\n!", (200, b"!", True)),
    ],
)
async def test_a_response_stream_reads_plain_and_unusual_responses(payload, expected) -> None:
    assert await _get(payload) == expected


async def test_a_response_stream_says_eof_when_the_body_is_cut_short() -> None:
    for payload in (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel",
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", b""):
        with pytest.raises(EOFError):
            await _get(payload)


async def test_a_response_h11_refuses_is_a_protocol_error() -> None:
    with pytest.raises(h11.RemoteProtocolError):
        await _get(b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 1\r\n\r\n!")
