"""The HTTP/1.1 client that streams generations from an upstream: a thin `asyncio.Protocol` over httptools
(llhttp, the C parser uvicorn uses), with a bounded pool of keep-alive connections per upstream.

Why not httpx here: the stream is the hot path, and httpx/httpcore/anyio took about a third of rolecall's CPU per
streamed token (issue #15's profile), most of it machinery a single streamed response does not need; aiohttp's
client measured the same or worse (docs/performance.md). Each socket read arrives as one piece of body
(`StreamedResponse.read`), so the layers above handle one batch per read. The engine's other requests (probes,
counts, health) stay on httpx: they are rare and not streamed.

A connection goes back to the pool only when its response was read to the end; a stream abandoned midway
(the client left, a stop sequence matched) closes its connection, which is what tells the upstream to stop
generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from rolecall.core.errors import EngineTimeout
from rolecall.engines.upstream_errors import ReplicaFault, Unreachable

# Unread body held per connection before the socket is paused (the reader is slower than the upstream).
_HIGH_WATER = 1 << 20
# After the last event (`[DONE]`) the body's end is normally in the same read. When it is not, the connection
# waits this long for it in the background (the reply is not held back), then joins the pool or closes.
_END_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host, port, the `Host` header (the URL's authority) and the base URL's path."""

    host: str
    port: int
    tls: bool
    authority: str
    prefix: str

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        """`base_url` holds no credentials (the engine took them out)."""
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        host = parts.hostname or "127.0.0.1"
        return cls(host, parts.port or (443 if tls else 80), tls, parts.netloc, parts.path.rstrip("/"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one response at a time. httptools calls the `on_*` methods as it parses."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # Kept: on Python 3.11 every `asyncio.get_running_loop()` is a getpid() system call (once per token here).
        self._loop = asyncio.get_running_loop()
        self.lost = False
        self._parser = httptools.HttpResponseParser(self)
        self._wake: asyncio.Future[None] | None = None
        self._waiting_since = 0.0
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.failure: str | None = None
        self.body: list[bytes] = []  # body pieces received and not taken yet
        self._buffered = 0
        self._header_name = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's class

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.failure = "the upstream switched protocols"
        except httptools.HttpParserError as exc:
            self.failure = f"the upstream's HTTP response is malformed ({exc})"
        if self.failure is not None and self.transport is not None:
            self.transport.close()
        if self._buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._notify()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._notify()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked now: once the message is over the parser has reset and no longer knows.
        self.keep_alive = self._parser.should_keep_alive()

    # the reader's side
    @property
    def status(self) -> int:
        return self._parser.get_status_code()

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost and self.failure is None

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._reset()
        self.transport.write(request)

    def take_body(self) -> bytes:
        """The body received since the last call (possibly empty)."""
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        if self._buffered > _HIGH_WATER and self.transport is not None:
            self.transport.resume_reading()
        self._buffered = 0
        return body

    def woken(self, timeout: float) -> asyncio.Future[None]:
        """A future done once more arrives or the connection ends; TimeoutError after `timeout` seconds (the
        caller says what timed out). A future, not a coroutine: the reader awaits it with no frame of its own
        in between, once per token. One timer serves many waits: it is armed when none is (or one is, for
        later), and re-armed when it fires early (a token every few ms must not cost a timer each)."""
        loop = self._loop
        self._wake = wake = loop.create_future()
        self._waiting_since, self._timeout = loop.time(), timeout
        due = self._waiting_since + timeout
        if self._timer is None or self._timer.when() > due:  # none, or armed for a longer wait
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(due, self._check_timeout)
        return wake  # once done (or cancelled) it is stale: `_notify` and `_check_timeout` leave it alone

    def _check_timeout(self) -> None:
        self._timer = None
        wake = self._wake
        if wake is None or wake.done():
            return  # not waiting now: the next wait arms a timer of its own
        due = self._waiting_since + self._timeout
        loop = self._loop
        if loop.time() >= due:
            wake.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(due, self._check_timeout)

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
        self.lost = True


@dataclass(slots=True)
class PoolStats:
    """What `/metrics` reports about one upstream's connections."""

    opened: int = 0  # connections made since start
    reused: int = 0  # requests sent on a kept-alive connection
    idle: int = 0
    active: int = 0


class StreamedResponse:
    """A response whose head has arrived; `read()` its body one socket read at a time."""

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self.status = connection.status
        self.headers = connection.headers
        self.over = False
        # A body with a length or chunks has an end of its own; only an unframed one ends at EOF.
        self._framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")

    async def read(self) -> bytes | None:
        """The body bytes of the next socket read(s); None once the body is over (EOF counts as the end:
        whether the answer was complete is the stream decoder's call)."""
        connection = self._connection
        while not connection.body:
            if connection.complete or connection.lost:
                if connection.failure is not None:
                    raise ReplicaFault(connection.failure)
                if not connection.complete and self._framed:
                    raise ReplicaFault("the upstream closed the connection mid-answer: the generation was cut off")
                return None
            try:
                await connection.woken(self._read_timeout)
            except TimeoutError:
                raise EngineTimeout("the upstream stopped sending for longer than read_timeout") from None
        return connection.take_body()

    async def read_all(self, limit: int = 1 << 16) -> bytes:
        """The body up to `limit` bytes (an error answer)."""
        body = b""
        while len(body) < limit and (piece := await self.read()) is not None:
            body += piece
        return body

    def ended(self) -> None:
        """The answer is over (`[DONE]`): what is left of the body is framing, and once it has arrived the
        connection may serve the next request."""
        self.over = True


@dataclass
class UpstreamPool:
    """Keep-alive connections to one upstream: at most `size` idle ones are kept (more may be open at once
    while requests run; they close when done)."""

    origin: Origin
    size: int
    connect_timeout: float
    read_timeout: float
    headers: bytes  # extra request header lines (auth), each ending in CRLF
    stats: PoolStats = field(default_factory=PoolStats)
    _idle: list[_Connection] = field(default_factory=list)
    _settling: set[asyncio.Task[None]] = field(default_factory=set)
    _ssl: ssl.SSLContext | None = None

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: bytes, head_timeout: float) -> AsyncIterator[StreamedResponse]:
        """POST `body` (JSON) to `path`; the response once its head has arrived within `head_timeout`.
        Leaving the block returns the connection to the pool if the body was read to its end, else closes it."""
        request = self._request(path, body)
        connection = await self._send(request, head_timeout)
        self.stats.active += 1
        response = StreamedResponse(connection, self.read_timeout)
        try:
            yield response
        finally:
            self.stats.active -= 1
            if response.over and not connection.complete and not connection.lost:
                settling = asyncio.get_running_loop().create_task(self._settle(connection))
                self._settling.add(settling)
                settling.add_done_callback(self._settling.discard)
            else:
                self._release(connection)

    async def _settle(self, connection: _Connection) -> None:
        """Wait (a little) for the end of an answer that is over, then pool its connection."""
        try:
            async with asyncio.timeout(_END_GRACE):
                while not connection.complete and not connection.lost:
                    connection.take_body()  # the chunked terminator, and anything after [DONE]
                    await connection.woken(_END_GRACE)
        except TimeoutError:
            pass  # never ended: not reusable, and closed below
        except BaseException:
            connection.close()  # the pool is closing
            raise
        self._release(connection)

    async def close(self) -> None:
        for settling in list(self._settling):
            settling.cancel()
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        self.stats.idle = 0

    def _request(self, path: str, body: bytes) -> bytes:
        origin = self.origin
        return (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n"
            b"%scontent-length: %d\r\n\r\n%s"
            % ((origin.prefix + path).encode(), origin.authority.encode("idna"), self.headers, len(body), body)
        )

    async def _send(self, request: bytes, head_timeout: float) -> _Connection:
        # A kept-alive connection the upstream closed meanwhile fails before any byte of answer: that one
        # request is retried on a fresh connection (it cannot have been processed).
        while self._idle:
            connection = self._idle.pop()
            self.stats.idle = len(self._idle)
            if connection.lost:
                continue
            self.stats.reused += 1
            connection.send(request)
            with contextlib.suppress(_StaleConnection):
                await self._head(connection, head_timeout, reused=True)
                return connection
        connection = await self._connect()
        connection.send(request)
        await self._head(connection, head_timeout, reused=False)
        return connection

    async def _head(self, connection: _Connection, timeout: float, *, reused: bool) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not connection.head_done:
                    if connection.failure is not None:
                        raise ReplicaFault(connection.failure)
                    if connection.lost:
                        if reused and not connection.received_any:
                            raise _StaleConnection()
                        raise ReplicaFault("the upstream closed the connection before answering")
                    await connection.woken(timeout)
        except TimeoutError:
            connection.close()
            message = f"the upstream did not start answering within {timeout:g} s (first_byte_timeout)"
            raise EngineTimeout(message) from None
        except BaseException:
            connection.close()
            raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, origin.host, origin.port, ssl=self._ssl if origin.tls else None
                )
        except TimeoutError:
            wait = self.connect_timeout
            raise Unreachable(f"the upstream could not be reached within {wait:g} s (connect_timeout)") from None
        except OSError:
            raise Unreachable("the upstream could not be connected to (refused or unreachable)") from None
        self.stats.opened += 1
        return connection

    def _release(self, connection: _Connection) -> None:
        self._idle = [kept for kept in self._idle if not kept.lost]  # the upstream closes idle ones at will
        if connection.reusable and len(self._idle) < self.size:
            self._idle.append(connection)
        else:
            connection.close()
        self.stats.idle = len(self._idle)

    async def get(self, path: str, timeout: float) -> int:
        """GET `path` (a health probe) and read its whole answer, all within `timeout` seconds: its status.
        The connection stays open for the next one (httpx's pool closed an idle one after 5 s, so a probe every
        5 s paid for a new TCP connection each time)."""
        origin = self.origin
        request = b"GET %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (
            (origin.prefix + path).encode(),
            origin.authority.encode("idna"),
            self.headers,
        )
        async with asyncio.timeout(timeout):
            connection = await self._send(request, timeout)
            status = connection.status
            try:
                while not connection.complete and not connection.lost:
                    connection.take_body()
                    await connection.woken(timeout)
            finally:
                self._release(connection)
        return status


class _StaleConnection(Exception):
    """A pooled connection that turned out closed before the request reached the upstream."""
