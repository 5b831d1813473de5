"""One HTTP/1.1 request and its response over an open connection, read as a head then body chunks.

Plain responses are read by probes/http_wire.py; anything else by h11, from the same bytes, so
every message is judged as h11 judges it. Errors: EOFError when the server closes before the
response is complete (eof_error), h11.RemoteProtocolError for a response h11 refuses
(http_invalid_response), and the connection's own errors.
"""

from __future__ import annotations

import h11

from probes.connection import Connection
from probes.http_wire import (
    FAST_HEAD_LIMIT,
    HEAD_END,
    ResponseHead,
    encode_request,
    parse_response_head,
)

READ_SIZE = 65536
# A response head may be this long, as in Chrome; h11's default (16 KiB) fails honest sites that
# send many cookies or a long CSP.
MAX_RESPONSE_HEAD = 256 * 1024


class ResponseStream:
    """`await send()`, then `await head()`, then `await chunk()` until it gives None."""

    def __init__(
        self, connection: Connection, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> None:
        self.connection = connection
        self.method, self.target, self.headers, self.body = method, target, headers, body
        # Set once the server closed: the caller tells an early close from a refused response.
        self.eof_seen = False
        self._h11: h11.Connection | None = None
        self._head: ResponseHead | None = None
        self._remaining: int | None = None  # body bytes still due on the fast path (None: to close)
        self._pending = b""  # body bytes read with the head
        self._done = False

    async def send(self) -> None:
        """Write the request (h11 writes what the fast path cannot) and wait until it is sent."""
        request = encode_request(self.method, self.target, self.headers, self.body)
        if request is None:
            request = self._start_h11()
        self.connection.write(request)
        await self.connection.drain()

    async def head(self) -> ResponseHead:
        """The response's status and headers (1xx skipped); raises as the module says."""
        if self._h11 is None:
            buffered = bytearray()
            while True:
                data = await self._read()
                if not data:
                    raise EOFError("connection closed before a response")
                buffered += data
                end = buffered.find(HEAD_END)
                if end >= 0:
                    head = parse_response_head(buffered, end)
                    if head is not None:
                        return self._fast(head, bytes(buffered[end + len(HEAD_END):]))
                    break
                if len(buffered) > FAST_HEAD_LIMIT:
                    break
            self._start_h11()
            assert self._h11 is not None
            self._h11.receive_data(bytes(buffered))
        return await self._h11_head()

    async def chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        if self._done:
            return None
        if self._h11 is not None:
            return await self._h11_chunk()
        if self._pending:
            data, self._pending = self._pending, b""
        elif self._remaining == 0:
            data = b""
        else:
            data = await self._read()
            if not data:
                if self._remaining is not None:
                    raise EOFError("connection closed before the response was complete")
                self._done = True  # a body that ends with the connection
                return None
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        if not data:
            self._done = True
            return None
        return data

    @property
    def reusable(self) -> bool:
        """Both messages complete and nobody asked to close: the connection may serve again."""
        if self._h11 is not None:
            return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE
        return self._done and self._head is not None and self._head.keep_alive

    # The fast path ---------------------------------------------------------------------------

    def _fast(self, head: ResponseHead, rest: bytes) -> ResponseHead:
        self._head = head
        self._remaining = head.content_length
        self._pending = rest
        if self._remaining == 0:
            self._done = True
        return head

    async def _read(self) -> bytes:
        data = await self.connection.read(READ_SIZE)
        if not data:
            self.eof_seen = True
        return data

    # h11 -------------------------------------------------------------------------------------

    def _start_h11(self) -> bytes:
        """An h11 client that has sent this request; returns the request's bytes as h11 wrote them."""
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        message = self._h11.send(h11.Request(method=self.method, target=self.target, headers=self.headers))
        if self.body:
            message += self._h11.send(h11.Data(data=self.body))
        return message + self._h11.send(h11.EndOfMessage())

    async def _h11_event(self) -> object:
        assert self._h11 is not None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                if self.eof_seen:
                    # A peer closing mid-message makes h11 complain about the protocol: an early EOF.
                    raise EOFError("connection closed before the response was complete") from error
                raise
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(await self._read())

    async def _h11_head(self) -> ResponseHead:
        while True:
            event = await self._h11_event()
            if isinstance(event, h11.Response):
                headers = list(event.headers.raw_items())
                return ResponseHead(event.status_code, headers, None, False)
            if isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed before a response")
            # InformationalResponse (1xx): the final response follows.

    async def _h11_chunk(self) -> bytes | None:
        event = await self._h11_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            self._done = True
            return None
        raise EOFError("connection closed before the response was complete")
