"""The Engine protocol: a GenerationRequest in, an async stream of EngineChunks out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from rolecall.core.chunks import EngineBatch
from rolecall.core.conversation import GenerationRequest


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine declares about itself once started."""

    context_window: int  # tokens one request may use, prompt and output together
    vision: bool = False
    slots: int | None = None  # sequences generated at once (admission control); None: not declared
    template_tools: bool = True  # False: the chat template drops `tools`, so rolecall prompts for them itself
    json_schema: bool = True  # decodes under a JSON schema (OpenAI's `response_format` json_schema)
    # The stream tells the prompt's token count before the first output (a PrefillChunk with prompt_tokens),
    # so a generation needs no count of its own unless the context check does.
    streams_prompt_count: bool = False


class Engine(Protocol):
    """A model behind rolecall. `generate` streams one batch of chunks per read of the engine's output, and is
    cancelled (closed) when the client goes away."""

    info: EngineInfo

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def healthy(self) -> bool: ...

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Exactly the prompt tokens `generate` would feed the model."""
        ...

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        """The prompt text the chat template makes of `request` (what `count_tokens` counts), or None
        where the engine does not show its rendering (vLLM, SGLang, Ollama, the scripted engine)."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]: ...
