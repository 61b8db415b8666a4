"""What an engine streams: text, reasoning, tool-call fragments, the finish reason, the prompt's cached part
and usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Why the engine stopped: the model ended its turn, the token cap was reached, or it called tools.
EngineFinish = Literal["stop", "length", "tool_calls"]


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
    reason: EngineFinish


@dataclass(frozen=True, slots=True)
class PrefillChunk:
    """How much of the prompt the engine read from its prefix cache, told as it starts generating (llama.cpp's
    prompt progress and per-token timings, vLLM's continuous usage stats), before the first token, and the
    whole prompt's token count where the stream tells it (None: it does not); the final UsageChunk, where one
    comes, still has the last word."""

    cached_tokens: int
    prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class UsageChunk:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


EngineChunk = TextChunk | ReasoningChunk | ToolCallChunk | FinishChunk | PrefillChunk | UsageChunk

# What an engine's stream yields: the chunks of one read of its output (a socket read, one step of a script),
# never empty. The layers above handle a read in one pass: a burst of tokens costs one pass, not one per token.
EngineBatch = list[EngineChunk]
