"""A scripted engine: tests enqueue the chunks it will stream, including pauses and failures.

It reaches what a tiny real model never produces (reasoning, split tool calls, mid-stream errors)
and, with its default answer, serves as a zero-cost engine for gateway benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable

from rolecall.core.chunks import EngineBatch, EngineChunk, EngineFinish, FinishChunk, TextChunk, UsageChunk
from rolecall.core.conversation import GenerationRequest
from rolecall.engines.base import EngineInfo

# A float is a pause in seconds; an exception is raised at that point of the stream.
ScriptStep = EngineChunk | float | BaseException


class ScriptedEngine:
    def __init__(self, context_window: int = 8192, default_reply: str = "Hello from the scripted engine.") -> None:
        self.info = EngineInfo(context_window=context_window)
        self._scripts: collections.deque[list[ScriptStep]] = collections.deque()
        self._default_reply = default_reply
        self.requests: list[GenerationRequest] = []  # the latest (up to 1,000), for tests to inspect
        self.active = 0  # streams currently open: tests check that cancellation frees them

    def enqueue(self, steps: Iterable[ScriptStep]) -> None:
        """The next `generate` call streams these steps, in order."""
        self._scripts.append(list(steps))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def healthy(self) -> bool:
        return True

    async def count_tokens(self, request: GenerationRequest) -> int:
        # One token per whitespace-separated word, plus one per turn: deterministic and cheap.
        return sum(len(turn.text.split()) + 1 for turn in request.turns)

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        return None  # a scripted engine has no chat template

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]:
        self.requests.append(request)
        if len(self.requests) > 1000:
            del self.requests[:500]  # as a benchmark engine it serves millions: keep the heap flat
        steps = self._scripts.popleft() if self._scripts else self._default_script(request)
        self.active += 1
        try:
            # The chunks between two pauses arrive as one read (one batch), as from a socket.
            batch: EngineBatch = []
            for step in steps:
                if isinstance(step, (BaseException, int, float)) and batch:
                    yield batch
                    batch = []
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, (int, float)):
                    await asyncio.sleep(step)
                    continue
                batch.append(step)
            if batch:
                yield batch
        finally:
            self.active -= 1

    def _default_script(self, request: GenerationRequest) -> list[ScriptStep]:
        words = self._default_reply.split(" ")[: request.max_tokens]
        chunks: list[ScriptStep] = [TextChunk(w if i == 0 else " " + w) for i, w in enumerate(words)]
        finish: EngineFinish = "length" if len(words) == request.max_tokens else "stop"
        prompt = sum(len(turn.text.split()) + 1 for turn in request.turns)
        return [*chunks, FinishChunk(finish), UsageChunk(prompt, len(words))]
