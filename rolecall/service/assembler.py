"""BlockAssembler: engine output -> the neutral content-block lifecycle (core.events).

Indexes are contiguous, one block is open at a time, delta kinds match their block, and a thinking
block is signed exactly once, right before it stops.
"""

from __future__ import annotations

from collections.abc import Callable

from rolecall.core.chunks import ToolCallChunk
from rolecall.core.events import BlockDelta, BlockKind, BlockSigned, BlockStarted, BlockStopped, OutputEvent
from rolecall.parsing.tool_json import ToolArgumentsGuard


class BlockAssembler:
    def __init__(self, sign_thinking: Callable[[str], str]) -> None:
        self._sign = sign_thinking
        self._index = -1
        self._open: BlockKind | None = None
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

    def text(self, text: str) -> list[OutputEvent]:
        if self._open == "text":  # the common case, once per streamed token
            return [BlockDelta(self._index, "text", text)]
        if self._after_thinking or self._open == "thinking":
            # The template's separator after `</think>` is not part of the answer.
            text = text.lstrip("\n")
            if not text:
                return []
        events = self._open_block("text")
        events.append(BlockDelta(self._index, "text", text))
        return events

    def hidden_thinking(self) -> None:
        """Reasoning that is dropped (thinking disabled): the separator after it is still not part of the answer."""
        if self._open != "text":
            self._after_thinking = True

    def thinking(self, text: str) -> list[OutputEvent]:
        if self._open != "thinking":
            text = text.lstrip()  # the block starts at the first visible reasoning
            if not text:
                return []
        body = self._pending_space + text
        visible = body.rstrip()
        self._pending_space = body[len(visible) :]
        if not visible:
            return []
        events = self._open_block("thinking")
        self._thinking.append(visible)
        events.append(BlockDelta(self._index, "thinking", visible))
        return events

    def starts_new_call(self, chunk: ToolCallChunk) -> bool:
        """A new index, or a new id at the index in use (some servers send every call at index 0), starts a call."""
        return self._open != "tool_call" or chunk.index != self._tool_index or chunk.id not in (None, self._tool_id)

    def tool_call(self, chunk: ToolCallChunk) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        if self.starts_new_call(chunk):
            events.extend(self._close_block())
            self._index += 1
            self._open = "tool_call"
            self._tool_index, self._tool_id = chunk.index, chunk.id
            self._arguments = ToolArgumentsGuard()
            self.tool_uses += 1
            events.append(BlockStarted(self._index, "tool_call", chunk.name or ""))
        fragment = self._arguments.feed(chunk.arguments)
        if fragment:
            events.append(BlockDelta(self._index, "tool_call", fragment))
        return events

    def finish(self) -> list[OutputEvent]:
        """Close the open block; a response with no block at all gets one empty text block."""
        if not self.started:
            return [BlockStarted(0, "text"), BlockStopped(0)]
        return self._close_block()

    def _open_block(self, kind: BlockKind) -> list[OutputEvent]:
        if self._open == kind:
            return []
        events = self._close_block()
        self._index += 1
        self._open = kind
        events.append(BlockStarted(self._index, kind))
        return events

    def _close_block(self) -> list[OutputEvent]:
        if self._open is None:
            return []
        events: list[OutputEvent] = []
        if self._open == "thinking":
            signature = self._sign("".join(self._thinking))
            events.append(BlockSigned(self._index, signature))
            self._thinking = []
            self._pending_space = ""
            self._after_thinking = True
        if self._open == "tool_call":
            # Arguments cut short (or invalid past some point) are closed into one complete object.
            ending = self._arguments.close()
            if ending:
                events.append(BlockDelta(self._index, "tool_call", ending))
        events.append(BlockStopped(self._index))
        self._open = None
        return events
