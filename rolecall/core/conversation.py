"""The neutral conversation every engine receives: chat turns, tools and sampling, free of wire details."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TurnRole = Literal["system", "user", "assistant", "tool"]
ToolMode = Literal["auto", "required", "none"]
ThinkingMode = Literal["default", "enabled", "disabled"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text in the client's key order


@dataclass(frozen=True, slots=True)
class Turn:
    role: TurnRole
    text: str = ""
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    images: tuple[str, ...] = ()  # image URLs (`data:` or http(s)), for engines with vision


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    # The OpenAI-side doors' extras, passed to engines that take them.
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    turns: tuple[Turn, ...]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    stop_sequences: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_mode: ToolMode = "auto"
    parallel_tool_calls: bool = True
    thinking: ThinkingMode = "default"
    # Set when rolecall prompts for tools itself (the engine's template has no tool support): the
    # engine is sent no `tools`, and its text is parsed in this syntax ("hermes", or "json" when forced).
    tool_syntax: str | None = None
    output_schema: dict[str, Any] | None = None  # constrained decoding: the answer must match this JSON schema

    @property
    def prefill(self) -> bool:
        """A final assistant turn is continued; the response holds only the continuation."""
        return bool(self.turns) and self.turns[-1].role == "assistant"
