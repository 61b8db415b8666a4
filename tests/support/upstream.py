"""A scripted OpenAI-compatible upstream (vLLM-like), served by uvicorn on a free loopback port.

Tests queue answers: recorded chunk sequences (`Stream`), HTTP failures (`Status`), or a stream that
breaks off (`Stream(..., drop=True)`). Every request is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.support.server import free_port
from tests.support.vllm_streams import text_reply


@dataclass
class Stream:
    chunks: list[dict[str, Any] | float]  # a float pauses that many seconds
    drop: bool = False  # break the connection after the chunks, without [DONE]


@dataclass
class Raw:
    """An answer written as given (a 200 that is not SSE, garbage lines, a stream that stops short),
    after `head_delay` seconds of silence. A float in `parts` pauses that many seconds."""

    parts: list[bytes | float]
    content_type: str = "text/event-stream"
    head_delay: float = 0.0


@dataclass
class Status:
    code: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedUpstream:
    """A raw ASGI app. `fail_with` answers every chat request with that status until reset."""

    def __init__(self, model: str = "MiniMaxAI/MiniMax-M2.7", context: int = 4096, owned_by: str = "vllm") -> None:
        self.model = model
        self.context = context
        self.owned_by = owned_by  # "vllm" offers /tokenize with chat messages; "ollama" has no /health either
        self.answers: collections.deque[Stream | Status | Raw] = collections.deque()
        self.count_answer: Raw | None = None  # replaces the prompt-count answer (/tokenize or the 1-token probe)
        self.fail_with: Status | None = None
        self.healthy = True
        self.no_usage_stats = False  # True: ignore `continuous_usage_stats`, as a server without it would
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.chat_ports: list[int] = []  # the client port of each chat request: one per connection
        self.chat_auth: list[str | None] = []  # the Authorization header of each chat request

    def enqueue(self, answer: Stream | Status | Raw) -> None:
        self.answers.append(answer)

    def chats(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path == "/v1/chat/completions"]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = json.loads(body) if body else {}
        path = scope["path"]
        self.requests.append((path, payload))
        if path == "/health" and self.owned_by != "ollama":
            await _json(send, 200 if self.healthy else 503, {})
        elif path == "/v1/models":
            model = {"id": self.model, "object": "model", "owned_by": self.owned_by, "max_model_len": self.context}
            await _json(send, 200, {"object": "list", "data": [model]})
        elif self.count_answer is not None and (path == "/tokenize" or payload.get("stream") is False):
            await _raw(send, self.count_answer)
        elif path == "/tokenize" and self.owned_by == "vllm":
            await _json(send, 200, {"count": _count(payload), "max_model_len": self.context, "tokens": []})
        elif path == "/v1/chat/completions" and payload.get("stream") is False:
            # Only rolecall's prompt count asks for a non-streamed answer (servers without /tokenize).
            usage = {"prompt_tokens": _count(payload), "completion_tokens": 1, "total_tokens": _count(payload) + 1}
            message = {"role": "assistant", "content": "Hi"}
            await _json(
                send, 200, {"choices": [{"index": 0, "message": message, "finish_reason": "length"}], "usage": usage}
            )
        elif path == "/v1/chat/completions":
            self.chat_ports.append(scope["client"][1])
            self.chat_auth.append(dict(scope["headers"]).get(b"authorization", b"").decode() or None)
            await self._chat(send, payload)
        else:
            await _json(send, 404, {"error": {"message": "Not Found"}})

    async def _chat(self, send: Any, payload: dict[str, Any]) -> None:
        answer = self.fail_with or (self.answers.popleft() if self.answers else Stream(text_reply("Hello there.")))
        if isinstance(answer, Status):
            await _json(send, answer.code, answer.body, answer.headers)
            return
        if isinstance(answer, Raw):
            await _raw(send, answer)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        # vLLM's continuous usage stats: the prompt's count (and the output's so far) on every chunk.
        continuous = (payload.get("stream_options") or {}).get("continuous_usage_stats") and not self.no_usage_stats
        told = 0
        for chunk in answer.chunks:
            if isinstance(chunk, float):
                await asyncio.sleep(chunk)
                continue
            if continuous and "usage" not in chunk:
                told += 1 if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])) else 0
                prompt = _count(payload)
                chunk = {**chunk, "usage": {"prompt_tokens": prompt, "completion_tokens": told, "total_tokens": prompt}}
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True}
            )
        if answer.drop:
            raise ConnectionAbortedError("scripted failure mid-stream")  # uvicorn cuts the connection
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def _count(payload: dict[str, Any]) -> int:
    """A deterministic stand-in for vLLM's tokenizer: 100 + words of every message."""
    words = sum(len(str(m.get("content") or "").split()) for m in payload.get("messages", []))
    return 100 + words


async def _json(send: Any, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def _raw(send: Any, answer: Raw) -> None:
    await asyncio.sleep(answer.head_delay)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", answer.content_type.encode())]}
    )
    for part in answer.parts:
        if isinstance(part, float):
            await asyncio.sleep(part)
        else:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextmanager
def serving(app: ScriptedUpstream, port: int | None = None) -> Iterator[str]:
    """Serve `app` on `port` (default: a free loopback port); yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("scripted upstream did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
