"""The floor for CPU per streamed token: the least a Python process can do to relay an upstream's chat stream.

    .venv/bin/python bench/floor_relay.py --port 9200 --upstream http://127.0.0.1:9100

Not a gateway: it ignores the request but for `max_tokens` and `stream`, keeps no state, validates nothing.
Per upstream read it does what any relay must: parse the HTTP chunking (httptools), split the `data:` lines,
decode each chunk (orjson), and write one Anthropic-style event per token to the client, all inside the
socket's read callback (uvloop): no task, no future, no generator per token. Non-streaming, it folds the text
and answers one JSON body. `bench/upstream_cpu.py --target floor` measures it with the same load as rolecall,
so the two figures side by side say how much of rolecall's CPU per token is rolecall's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from urllib.parse import urlsplit

import httptools
import orjson

_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class Exchange:
    """One client request relayed: the upstream's reads turned into the client's writes as they arrive."""

    def __init__(self, client: asyncio.Transport, stream: bool) -> None:
        self.client = client
        self.stream = stream
        self.text: list[str] = []
        self.usage: object = None
        self._rest = b""
        if stream:
            client.write(_SSE_HEAD)

    def feed(self, body: bytes) -> None:
        lines = (self._rest + body).split(b"\n")
        self._rest = lines.pop()
        frames = []
        for line in lines:
            if not line.startswith(b"data: {"):
                continue
            chunk = orjson.loads(line[6:])
            self.usage = chunk.get("usage") or self.usage
            for choice in chunk["choices"]:
                text = choice["delta"].get("content")
                if not text:
                    continue
                if self.stream:
                    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
                    frames.append(b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n")
                else:
                    self.text.append(text)
        if frames:
            self.client.write(_chunked(b"".join(frames)))

    def end(self) -> None:
        if self.stream:
            self.client.write(_chunked(_STOP) + b"0\r\n\r\n")
            return
        body = orjson.dumps({"content": [{"type": "text", "text": "".join(self.text)}], "usage": self.usage})
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        self.client.write(head + body)


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream, serving one exchange at a time."""

    def __init__(self, pool: list[Upstream]) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.feed(body)

    def on_message_complete(self) -> None:
        exchange, self.exchange = self.exchange, None
        self._parser = httptools.HttpResponseParser(self)
        if exchange is not None:
            exchange.end()
        self._pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self._pool.remove(self)


class Client(asyncio.Protocol):
    """One client connection: each request's `max_tokens` and `stream` sent on to the upstream."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._parser = httptools.HttpRequestParser(self)
        self._body = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = orjson.loads(self._body)
        self._body = bytearray()
        assert self.transport is not None
        exchange = Exchange(self.transport, bool(request.get("stream")))
        asyncio.get_running_loop().create_task(self._relay.send(exchange, int(request.get("max_tokens") or 16)))


class Relay:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._idle: list[Upstream] = []

    async def send(self, exchange: Exchange, max_tokens: int) -> None:
        if self._idle:
            upstream = self._idle.pop()
        else:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self._idle), self._host, self._port
            )
        body = orjson.dumps(
            {
                "model": "zero-cost",
                "max_tokens": max_tokens,
                "stream": True,
                "messages": [{"role": "user", "content": "hello"}],
            }
        )
        upstream.exchange = exchange
        assert upstream.transport is not None
        upstream.transport.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (self._host.encode(), len(body), body)
        )


async def serve(port: int, upstream: str) -> None:
    parts = urlsplit(upstream)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 80)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(relay), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the zero-cost upstream's base URL")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(args.port, args.upstream))
        else:
            uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
