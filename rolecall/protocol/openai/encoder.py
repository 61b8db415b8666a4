"""Neutral output events -> `chat.completion.chunk` dicts, SDK-strict:

- one id for every chunk; `delta.role` only in each choice's first chunk (never `""`);
- a tool call's `id`, `type` and `function.name` on its first delta, then `function.arguments` fragments
  whose concatenation is the JSON;
- exactly one non-null `finish_reason` per choice, in a chunk of its own;
- with `include_usage`, a last chunk with `choices: []` and the usage of all choices together.

Reasoning (front-doors.md §3): `reasoning_content` deltas by default; `reasoning_split: true` adds MiniMax's
`reasoning_details`; `reasoning_split: false` writes it into the content as `<think>\n…\n</think>\n\n`.
The non-streaming body is the fold of exactly these chunks (fold.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from rolecall.core.events import BlockDelta, BlockStarted, BlockStopped, Finished, FinishReason, OutputEvent, Started
from rolecall.core.usage import Usage
from rolecall.protocol.ids import new_id

ReasoningStyle = Literal["field", "split", "inline"]

FINISH_REASONS: dict[FinishReason, str] = {
    "end": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
}
THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"
# MiniMax's reasoning_details item (one per reply); the text is the delta in a chunk, the whole in a body.
REASONING_DETAIL = {"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1", "index": 0}


def reasoning_style(reasoning_split: bool | None) -> ReasoningStyle:
    """Absent: `reasoning_content`; true: that plus `reasoning_details`; false: `<think>` in the content."""
    if reasoning_split is None:
        return "field"
    return "split" if reasoning_split else "inline"


class ChunkSink(Protocol):
    """What is told the chunks a stream sends (the fold, protocol/openai/fold.ChatFold)."""

    def add(self, chunk: dict[str, Any]) -> None: ...

    def add_delta(self, index: int, key: str, text: str) -> None:
        """A chunk of choice `index` whose delta is `{key: text}` alone (see `ChunkEncoder.plain_delta`)."""
        ...


@dataclass(slots=True)
class _Choice:
    """What the encoder tracks per choice."""

    tool_calls: int = 0  # tool calls begun so far: the next one's `index`
    tool_index: int = 0  # the `index` of the call being streamed
    open_kind: str | None = None
    reasoning_deltas: int = 0
    usage: Usage | None = None  # set when the choice finished


@dataclass(slots=True)
class ChunkEncoder:
    """Encodes the events of one request's choices; `model` is the name the client asked for (echoed)."""

    model: str
    n: int = 1
    style: ReasoningStyle = "field"
    include_usage: bool = False
    ai_name: str | None = None  # the AI character's name, sent as `delta.name` with the role
    id: str = field(default_factory=lambda: new_id("chatcmpl-"))
    created: int = field(default_factory=lambda: int(time.time()))
    _choices: list[_Choice] = field(init=False)
    _delta_frames: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._choices = [_Choice() for _ in range(self.n)]
        # The frame of a chunk whose delta is one plain text field, per field, around its index and text (JSON):
        # the bytes `data_frame` makes of the chunk `encode` builds, without building it. One per streamed token.
        head = orjson.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created})[:-1]
        head = b"data: " + (head + b',"model":' + orjson.dumps(self.model)).replace(b"%", b"%%")
        self._delta_frames = {
            key: head + b',"choices":[{"index":%d,"delta":{"' + key.encode() + b'":%s},"finish_reason":null}]}\n\n'
            for key in ("content", "reasoning_content")
        }

    def encode(self, index: int, event: OutputEvent) -> list[dict[str, Any]]:
        """The chunks (zero or more) one neutral event of choice `index` becomes."""
        choice = self._choices[index]
        if isinstance(event, BlockDelta):  # the hot path first
            return [self._chunk(index, self._delta(choice, event))]
        if isinstance(event, Started):
            first: dict[str, Any] = {"role": "assistant", "content": ""}
            if self.ai_name:
                first["name"] = self.ai_name
            return [self._chunk(index, first)]
        if isinstance(event, BlockStarted):
            choice.open_kind = event.kind
            if event.kind == "thinking" and self.style == "inline":
                return [self._chunk(index, {"content": THINK_OPEN})]
            if event.kind == "tool_call":
                choice.tool_index = choice.tool_calls
                choice.tool_calls += 1
                call = {
                    "index": choice.tool_index,
                    "id": new_id("call_"),
                    "type": "function",
                    "function": {"name": event.tool_name or "", "arguments": ""},
                }
                return [self._chunk(index, {"tool_calls": [call]})]
            return []
        if isinstance(event, BlockStopped):
            kind, choice.open_kind = choice.open_kind, None
            if kind == "thinking" and self.style == "inline":
                return [self._chunk(index, {"content": THINK_CLOSE})]
            return []
        if isinstance(event, Finished):
            choice.usage = event.usage
            return [self._chunk(index, {}, FINISH_REASONS[event.reason])]
        return []  # BlockSigned: OpenAI clients have no place for a signature

    def plain_delta(self, index: int, event: BlockDelta) -> str | None:
        """The delta field (`content`, `reasoning_content`) when `event` becomes one chunk whose delta is that field
        alone with the event's text (a text or reasoning token: nearly every event), counted as `encode` counts
        it; None for any other delta (then `encode` it). What `frames` and the fold's fast path are built on."""
        if event.kind == "text":
            return "content"
        if event.kind != "thinking" or self.style == "split":
            return None
        self._choices[index].reasoning_deltas += 1
        return "content" if self.style == "inline" else "reasoning_content"

    def frames(self, index: int, events: list[OutputEvent], sent: ChunkSink | None = None) -> bytes:
        """The `data:` frames of the chunks the events of one read of choice `index` become, joined (one socket
        write): byte for byte the frames of `encode`'s chunks, a plain delta's from a prebuilt template. `sent`,
        if given, is told every chunk framed (MiniMax's closing frame folds them)."""
        out = []
        for event in events:
            if type(event) is BlockDelta and (key := self.plain_delta(index, event)) is not None:
                out.append(self._delta_frames[key] % (index, orjson.dumps(event.text)))
                if sent is not None:
                    sent.add_delta(index, key, event.text)
                continue
            for chunk in self.encode(index, event):
                out.append(data_frame(chunk))
                if sent is not None:
                    sent.add(chunk)
        return b"".join(out)

    @property
    def finished(self) -> bool:
        """Every choice has finished: what follows is the closing (`closing()`, the door's end of stream)."""
        return all(choice.usage is not None for choice in self._choices)

    def closing(self) -> list[dict[str, Any]]:
        """After every choice finished: the usage chunk, when the client asked for it."""
        if not self.include_usage:
            return []
        return [
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }
        ]

    def usage(self) -> dict[str, Any]:
        """OpenAI usage over all choices: one prompt (the whole of it, cached part included), every output."""
        finished = [choice.usage for choice in self._choices if choice.usage is not None]
        prompt = finished[0] if finished else Usage(0)
        completion = sum(usage.output_tokens for usage in finished)
        reasoning = sum(min(c.reasoning_deltas, c.usage.output_tokens) for c in self._choices if c.usage)
        return {
            "prompt_tokens": prompt.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": prompt.cached_tokens},
            # Counted as reasoning deltas: engines stream one token per delta.
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    def _delta(self, choice: _Choice, event: BlockDelta) -> dict[str, Any]:
        if event.kind == "text":
            return {"content": event.text}
        if event.kind == "tool_call":
            return {"tool_calls": [{"index": choice.tool_index, "function": {"arguments": event.text}}]}
        choice.reasoning_deltas += 1
        if self.style == "inline":
            return {"content": event.text}
        if self.style == "split":
            return {"reasoning_content": event.text, "reasoning_details": [{**REASONING_DETAIL, "text": event.text}]}
        return {"reasoning_content": event.text}

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        }


def data_frame(payload: dict[str, Any]) -> bytes:
    """One SSE `data:` frame of compact JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
