"""The embedded engine as a worker process sees it (`rolecall serve --workers N`): the parent runs and
supervises the one llama.cpp child; each worker speaks to it over loopback with its internal key.

While the parent restarts a crashed engine (on the same port), its port refuses connections: a request then
gets 529 with `retry-after`, as it would from a single-process rolecall, not a 502.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import aclosing

from rolecall.core.chunks import EngineBatch
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import Overloaded
from rolecall.engines.base import EngineInfo
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.engines.upstream_errors import Unreachable

_RESTARTING = "Overloaded: the embedded engine stopped and is being restarted"


class EmbeddedClient:
    """One worker's client of the parent's embedded engine at `url`."""

    def __init__(self, url: str, api_key: str, *, context: int, parallel: int) -> None:
        self._client = OpenAIChatEngine(url, api_key=api_key)
        self._parallel = parallel
        self.info = EngineInfo(context_window=context, slots=parallel)

    async def start(self) -> None:
        await self._client.start()
        self.info = dataclasses.replace(self._client.info, slots=self._parallel)

    async def close(self) -> None:
        await self._client.close()

    async def healthy(self) -> bool:
        return await self._client.healthy()

    async def count_tokens(self, request: GenerationRequest) -> int:
        try:
            return await self._client.count_tokens(request)
        except Unreachable:
            raise Overloaded(_RESTARTING, retry_after=2) from None

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        try:
            return await self._client.render_prompt(request)
        except Unreachable:
            raise Overloaded(_RESTARTING, retry_after=2) from None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]:
        try:
            # Closing our stream (client gone, stop sequence) closes the engine's at once.
            async with aclosing(self._client.generate(request)) as batches:  # type: ignore[type-var]
                async for batch in batches:
                    yield batch
        except Unreachable:
            raise Overloaded(_RESTARTING, retry_after=2) from None
