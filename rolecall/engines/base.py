"""The Engine protocol and the chunks an engine streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from rolecall.shaping.conversation import GenerationRequest

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    """A fragment of one tool call. The first fragment of a call carries its id and name."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class FinishChunk:
    reason: FinishReason


@dataclass(frozen=True, slots=True)
class UsageChunk:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


EngineChunk = TextChunk | ReasoningChunk | ToolCallChunk | FinishChunk | UsageChunk


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine declares about itself once started."""

    context_window: int  # tokens one request may use, prompt and output together
    vision: bool = False
    slots: int | None = None  # sequences generated at once (admission control); None: not declared
    template_tools: bool = True  # False: the chat template drops `tools`, so rolecall prompts for them itself


class Engine(Protocol):
    """A model behind rolecall. `generate` is cancelled (closed) when the client goes away."""

    info: EngineInfo

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def healthy(self) -> bool: ...

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Exactly the prompt tokens `generate` would feed the model."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineChunk]: ...
