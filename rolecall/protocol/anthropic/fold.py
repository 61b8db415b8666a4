"""The non-streaming body is the fold of the stream events, exactly as the SDKs accumulate them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from rolecall.core.events import BlockDelta, OutputEvent
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.events import SUCCESS, Event

_TEXT_KEYS = {"text": "text", "thinking": "thinking"}  # block type -> the field its deltas extend


class MessageFold:
    """A Message built from the stream events as they come (`add`, or `add_events` for one read's neutral
    events), read once at the end (`message()`). Text and thinking pieces are joined once at the end, not
    appended to a growing string per token."""

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._pieces: dict[int, list[str]] = {}  # text or thinking block index -> its pieces so far
        self._tool_json: dict[int, list[str]] = {}

    def add_events(self, encoder: MessageEncoder, events: list[OutputEvent]) -> None:
        """Fold the events of one read of the engine's output, as `encoder` would encode them: a text delta
        (one per streamed token) goes straight to its block, without building its stream event."""
        pieces = self._pieces
        for event in events:
            if type(event) is BlockDelta and event.kind == "text":
                pieces[event.index].append(event.text)
            else:
                for encoded in encoder.encode(event):
                    self.add(encoded)

    def add(self, event: Event) -> None:
        """Fold one stream event."""
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            delta_kind = delta["type"]
            if delta_kind == "text_delta":
                self._pieces[event["index"]].append(delta["text"])
            elif delta_kind == "thinking_delta":
                self._pieces[event["index"]].append(delta["thinking"])
            elif delta_kind == "signature_delta":
                self._message["content"][event["index"]]["signature"] = delta["signature"]
            elif delta_kind == "input_json_delta":
                self._tool_json.setdefault(event["index"], []).append(delta["partial_json"])
        elif kind == "content_block_start":
            block = dict(event["content_block"])
            self._message["content"].append(block)
            key = _TEXT_KEYS.get(block["type"])
            if key is not None:
                self._pieces[event["index"]] = [block[key]]
        elif kind == "content_block_stop":
            parts = self._tool_json.pop(event["index"], None)
            if parts is not None and "".join(parts):
                self._message["content"][event["index"]]["input"] = orjson.loads("".join(parts))
        elif kind == "message_start":
            self._message = dict(event["message"], content=[])
        elif kind == "message_delta":
            self._message.update(event["delta"])
            self._message["usage"] = event["usage"]

    def message(self) -> dict[str, Any]:
        """The Message (with `base_resp`) of everything folded so far."""
        content = self._message["content"]
        for index, pieces in self._pieces.items():
            block = content[index]
            block[_TEXT_KEYS[block["type"]]] = "".join(pieces)
        self._message["base_resp"] = SUCCESS
        return self._message


async def fold(events: AsyncIterator[Event]) -> dict[str, Any]:
    """The Message of a whole stream of events."""
    folded = MessageFold()
    async for event in events:
        folded.add(event)
    return folded.message()
