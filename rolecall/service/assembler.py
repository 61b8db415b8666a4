"""BlockAssembler: engine output -> the Anthropic content-block lifecycle.

Indexes are contiguous, one block is open at a time, delta types match their block, and a thinking
block gets exactly one `signature_delta` right before it stops.
"""

from __future__ import annotations

from collections.abc import Callable

from rolecall.core.chunks import ToolCallChunk
from rolecall.parsing.tool_json import ToolArgumentsGuard
from rolecall.protocol.events import Event, block_delta, block_start, block_stop
from rolecall.protocol.ids import new_id


class BlockAssembler:
    def __init__(self, sign_thinking: Callable[[str], str]) -> None:
        self._sign = sign_thinking
        self._index = -1
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._thinking: list[str] = []
        self._pending_space = ""  # trailing reasoning whitespace, emitted only if more reasoning follows
        self._after_thinking = False
        self._tool_index: int | None = None
        self._tool_id: str | None = None
        self._arguments = ToolArgumentsGuard()  # keeps the streamed arguments a valid JSON prefix
        self.tool_uses = 0

    @property
    def started(self) -> bool:
        return self._index >= 0

    def text(self, text: str) -> list[Event]:
        if self._open != "text" and (self._after_thinking or self._open == "thinking"):
            # The template's separator after `</think>` is not part of the answer.
            text = text.lstrip("\n")
            if not text:
                return []
        events = self._open_block("text", {"type": "text", "text": ""})
        events.append(block_delta(self._index, {"type": "text_delta", "text": text}))
        return events

    def hidden_thinking(self) -> None:
        """Reasoning that is dropped (thinking disabled): the separator after it is still not part of the answer."""
        if self._open != "text":
            self._after_thinking = True

    def thinking(self, text: str) -> list[Event]:
        if self._open != "thinking":
            text = text.lstrip()  # the block starts at the first visible reasoning
            if not text:
                return []
        body = self._pending_space + text
        visible = body.rstrip()
        self._pending_space = body[len(visible) :]
        if not visible:
            return []
        events = self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._thinking.append(visible)
        events.append(block_delta(self._index, {"type": "thinking_delta", "thinking": visible}))
        return events

    def starts_new_call(self, chunk: ToolCallChunk) -> bool:
        """A new index, or a new id at the index in use (some servers send every call at index 0), starts a call."""
        return self._open != "tool_use" or chunk.index != self._tool_index or chunk.id not in (None, self._tool_id)

    def tool_call(self, chunk: ToolCallChunk) -> list[Event]:
        events: list[Event] = []
        if self.starts_new_call(chunk):
            events.extend(self._close_block())
            self._index += 1
            self._open = "tool_use"
            self._tool_index, self._tool_id = chunk.index, chunk.id
            self._arguments = ToolArgumentsGuard()
            self.tool_uses += 1
            block = {"type": "tool_use", "id": new_id("toolu_"), "name": chunk.name or "", "input": {}}
            events.append(block_start(self._index, block))
        fragment = self._arguments.feed(chunk.arguments)
        if fragment:
            events.append(block_delta(self._index, {"type": "input_json_delta", "partial_json": fragment}))
        return events

    def finish(self) -> list[Event]:
        """Close the open block; a response with no block at all gets one empty text block."""
        if not self.started:
            return [block_start(0, {"type": "text", "text": ""}), block_stop(0)]
        return self._close_block()

    def _open_block(self, kind: str, block: dict) -> list[Event]:
        if self._open == kind:
            return []
        events = self._close_block()
        self._index += 1
        self._open = kind
        events.append(block_start(self._index, block))
        return events

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        events: list[Event] = []
        if self._open == "thinking":
            signature = self._sign("".join(self._thinking))
            events.append(block_delta(self._index, {"type": "signature_delta", "signature": signature}))
            self._thinking = []
            self._pending_space = ""
            self._after_thinking = True
        if self._open == "tool_use":
            # Arguments cut short (or invalid past some point) are closed into one complete object.
            ending = self._arguments.close()
            if ending:
                events.append(block_delta(self._index, {"type": "input_json_delta", "partial_json": ending}))
        events.append(block_stop(self._index))
        self._open = None
        return events
