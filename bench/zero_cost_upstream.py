"""A zero-cost OpenAI-compatible upstream (vLLM-shaped) for measuring what rolecall itself costs.

    .venv/bin/python bench/zero_cost_upstream.py --port 9100 --pace 0.02   # one token every 20 ms
    .venv/bin/python bench/zero_cost_upstream.py --port 9100 --pace 0      # the whole answer in one write

It answers `max_tokens` tokens (one word each), then the finish, the usage and `[DONE]`, on keep-alive
connections with chunked bodies, as vLLM does. Every chunk is built once at start, so the upstream spends next
to nothing per token: the CPU a gateway in front of it burns is the gateway's own. Prompts are "counted" by
`/tokenize` (vLLM's) as 100 + their length / 4; `stream_options.continuous_usage_stats` puts usage on every
chunk, as vLLM does. Raw asyncio + httptools: no framework cost on this side either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import httptools
import orjson

MODEL = "zero-cost"
CONTEXT = 65536


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    body: dict = {
        "id": "chatcmpl-zero",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class Answers:
    """The bytes of every answer, built once per (tokens, prompt, continuous usage)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, bool], list[bytes]] = {}

    def events(self, tokens: int, prompt: int, continuous: bool) -> list[bytes]:
        key = (tokens, prompt, continuous)
        if key not in self._cache:
            self._cache[key] = self._build(tokens, prompt, continuous)
        return self._cache[key]

    @staticmethod
    def _build(tokens: int, prompt: int, continuous: bool) -> list[bytes]:
        def usage(done: int) -> dict | None:
            return _usage(prompt, done) if continuous else None

        events = [_sse(_chunk({"role": "assistant", "content": ""}, usage=usage(0)))]
        events += [_sse(_chunk({"content": f" w{i % 10}"}, usage=usage(i + 1))) for i in range(tokens)]
        events.append(_sse(_chunk({}, "length", usage=usage(tokens))))
        final = {"id": "chatcmpl-zero", "object": "chat.completion.chunk", "model": MODEL, "choices": []}
        events.append(_sse({**final, "usage": _usage(prompt, tokens)}))
        events.append(b"data: [DONE]\n\n")
        return [_chunked(e) for e in events]


class Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered in order."""

    def __init__(self, pace: float, answers: Answers) -> None:
        self._pace = pace
        self._answers = answers
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body = bytearray()
        self._transport: asyncio.Transport | None = None
        self._queue: asyncio.Queue[tuple[bytes, bytes, bytes]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's class
        self._worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self._queue.put_nowait((self._parser.get_method(), self._url, bytes(self._body)))
        self._url, self._body = b"", bytearray()

    async def _serve(self) -> None:
        while True:
            method, url, body = await self._queue.get()
            await self._answer(method, url.split(b"?")[0], body)

    def _write_json(self, status: int, body: object) -> None:
        raw = orjson.dumps(body)
        head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (status, len(raw))
        assert self._transport is not None
        self._transport.write(head + raw)

    async def _answer(self, method: bytes, path: bytes, body: bytes) -> None:
        if path == b"/health":
            self._write_json(200, {})
        elif path == b"/v1/models":
            model = {"id": MODEL, "object": "model", "owned_by": "vllm", "max_model_len": CONTEXT}
            self._write_json(200, {"object": "list", "data": [model]})
        elif path == b"/tokenize":
            self._write_json(200, {"count": 100 + len(body) // 4, "max_model_len": CONTEXT, "tokens": []})
        elif path == b"/v1/chat/completions":
            await self._chat(orjson.loads(body), 100 + len(body) // 4)
        else:
            self._write_json(404, {"error": {"message": "Not Found"}})

    async def _chat(self, request: dict, prompt: int) -> None:
        tokens = int(request.get("max_tokens") or 16)
        if not request.get("stream"):
            message = {"role": "assistant", "content": "".join(f" w{i % 10}" for i in range(tokens))}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            self._write_json(200, {"id": "chatcmpl-zero", "choices": [choice], "usage": _usage(prompt, tokens)})
            return
        continuous = bool((request.get("stream_options") or {}).get("continuous_usage_stats"))
        events = self._answers.events(tokens, prompt, continuous)
        transport = self._transport
        assert transport is not None
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        if self._pace <= 0:
            transport.write(b"".join(events) + b"0\r\n\r\n")
            return
        transport.write(events[0])
        for event in events[1:-3]:
            await asyncio.sleep(self._pace)
            if transport.is_closing():
                return
            transport.write(event)
        transport.write(b"".join(events[-3:]) + b"0\r\n\r\n")


async def serve(port: int, pace: float) -> None:
    answers = Answers()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(pace, answers), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between tokens; 0: the answer at once")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop

            uvloop.run(serve(args.port, args.pace))
        except ImportError:
            asyncio.run(serve(args.port, args.pace))


if __name__ == "__main__":
    main()
