"""Neutral output events -> Anthropic SSE events (plain dicts, in the key order the spec shows).

The door's vocabulary lives here: `msg_`/`toolu_` ids, content-block and delta types, stop-reason names
and the ping after `message_start`. The non-streaming body is the fold of exactly these events.
"""

from __future__ import annotations

from rolecall.core.events import (
    BlockDelta,
    BlockSigned,
    BlockStarted,
    BlockStopped,
    Finished,
    FinishReason,
    OutputEvent,
    Started,
)
from rolecall.core.usage import Usage
from rolecall.protocol.anthropic import events as ev
from rolecall.protocol.ids import new_id

STOP_REASONS: dict[FinishReason, str] = {
    "end": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
}
_DELTA_KEYS = {"text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking")}


def usage_object(usage: Usage) -> dict:
    """Anthropic usage: `input_tokens` counts only the prompt tokens the engine computed."""
    return ev.usage(usage.uncached_tokens, usage.output_tokens, usage.cached_tokens)


class MessageEncoder:
    """Encodes one generation's events; `model` is the name the client asked for (echoed back)."""

    def __init__(self, model: str) -> None:
        self._model = model

    def encode(self, event: OutputEvent) -> list[ev.Event]:
        """The SSE events (zero or more) one neutral event becomes."""
        if type(event) is BlockDelta:  # the hot path: one per token, built inline
            if event.kind == "tool_call":
                delta = {"type": "input_json_delta", "partial_json": event.text}
            else:
                kind, key = _DELTA_KEYS[event.kind]
                delta = {"type": kind, key: event.text}
            return [{"type": "content_block_delta", "index": event.index, "delta": delta}]
        if isinstance(event, BlockStarted):
            return [ev.block_start(event.index, _empty_block(event))]
        if isinstance(event, BlockSigned):
            return [ev.block_delta(event.index, {"type": "signature_delta", "signature": event.signature})]
        if isinstance(event, BlockStopped):
            return [ev.block_stop(event.index)]
        if isinstance(event, Started):
            usage = event.usage
            start = ev.message_start(new_id("msg_"), self._model, usage.uncached_tokens, usage.cached_tokens)
            return [start, ev.PING]
        assert isinstance(event, Finished)
        reason = STOP_REASONS[event.reason]
        return [ev.message_delta(reason, event.stop_sequence, usage_object(event.usage)), ev.MESSAGE_STOP]


def _empty_block(event: BlockStarted) -> dict:
    if event.kind == "text":
        return {"type": "text", "text": ""}
    if event.kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": new_id("toolu_"), "name": event.tool_name or "", "input": {}}
