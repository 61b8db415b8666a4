"""The neutral conversation every engine receives: chat turns, tools and sampling, free of wire details."""

from __future__ import annotations

import dataclasses
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
    """Sampling parameters; None leaves one to the engine (or to the model's configured default)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    # The OpenAI-side doors' extras, passed to engines that take them.
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None  # > 1 discourages repeating recent tokens (llama.cpp's name)

    def or_defaults(self, defaults: Sampling) -> Sampling:
        """Each parameter as the client sent it, else the default: a client's own choice always wins."""
        chosen = {}
        for parameter in dataclasses.fields(Sampling):
            mine = getattr(self, parameter.name)
            chosen[parameter.name] = mine if mine is not None else getattr(defaults, parameter.name)
        return Sampling(**chosen)


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


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """A model's configured output settings: a cap on output tokens, and the sampling used for each
    parameter a client leaves out. A small model at a client's default temperature may ramble until
    the context is full; these keep its answers short and its turns ending."""

    max_output_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)

    def fit(self, request: GenerationRequest, room: int) -> GenerationRequest:
        """`request` with default sampling filled in and `max_tokens` cut to the cap and to the `room`
        left in the context window. A cut is reported like any other: finish reason "length"."""
        cap = min(request.max_tokens, room, self.max_output_tokens or room)
        sampling = request.sampling.or_defaults(self.sampling)
        if cap == request.max_tokens and sampling == request.sampling:
            return request
        return dataclasses.replace(request, max_tokens=cap, sampling=sampling)
