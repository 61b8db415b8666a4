"""The non-streaming body: the fold of a request's chunks into one `chat.completion` object. Folding the
very chunks a stream sends keeps the two forms identical (one pipeline)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rolecall.core.events import BlockDelta, OutputEvent
from rolecall.protocol.openai.encoder import ChunkEncoder
from rolecall.protocol.openai.errors import SUCCESS


def fold(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`chat.completion` from `chat.completion.chunk`s (the usage chunk included), choices by index."""
    folded = ChatFold()
    for chunk in chunks:
        folded.add(chunk)
    return folded.body()


class ChatFold:
    """The fold built as the chunks come (`add`, or `add_events` for one read's neutral events), read at the end
    (`body()`)."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _FoldedChoice] = {}
        self._usage: dict[str, Any] | None = None

    def add_events(self, encoder: ChunkEncoder, index: int, events: list[OutputEvent]) -> None:
        """Fold the chunks the events of one read of choice `index` become under `encoder`: a plain text or
        reasoning delta (nearly every streamed token) goes straight to its choice, without building its chunk."""
        for event in events:
            if type(event) is BlockDelta and (key := encoder.plain_delta(index, event)) is not None:
                self.add_delta(index, key, event.text)
            else:
                for chunk in encoder.encode(index, event):
                    self.add(chunk)

    def add_delta(self, index: int, key: str, text: str) -> None:
        """Fold a chunk of choice `index` whose delta is `{key: text}` alone (`content` or `reasoning_content`), as
        `add` would, without the chunk."""
        if text:
            choice = self._choices[index]
            (choice.content if key == "content" else choice.reasoning).append(text)

    def add(self, chunk: dict[str, Any]) -> None:
        """Fold one chunk."""
        self._head = self._head or chunk
        self._usage = chunk.get("usage") or self._usage
        for item in chunk["choices"]:
            self._choices.setdefault(item["index"], _FoldedChoice()).add(item)

    def body(self) -> dict[str, Any]:
        """The `chat.completion` of everything folded so far."""
        head, choices = self._head, self._choices
        return {
            "id": head.get("id"),
            "object": "chat.completion",
            "created": head.get("created"),
            "model": head.get("model"),
            "choices": [choices[index].body(index) for index in sorted(choices)],
            "usage": self._usage,
            "base_resp": SUCCESS,
        }


class _FoldedChoice:
    def __init__(self) -> None:
        self.name: str | None = None
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.details = False
        self.calls: list[dict[str, Any]] = []
        self.finish_reason: str | None = None

    def add(self, item: dict[str, Any]) -> None:
        delta = item["delta"]
        self.name = delta.get("name", self.name)
        if delta.get("content"):
            self.content.append(delta["content"])
        if delta.get("reasoning_content"):
            self.reasoning.append(delta["reasoning_content"])
        self.details = self.details or "reasoning_details" in delta
        for call in delta.get("tool_calls") or ():
            if "id" in call:
                self.calls.append({"id": call["id"], "type": "function", "function": dict(call["function"])})
            else:
                self.calls[call["index"]]["function"]["arguments"] += call["function"]["arguments"]
        self.finish_reason = item.get("finish_reason") or self.finish_reason

    def body(self, index: int) -> dict[str, Any]:
        content = "".join(self.content)
        message: dict[str, Any] = {"role": "assistant", "content": content if content or not self.calls else None}
        if self.name is not None:
            message["name"] = self.name
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
            if self.details:
                message["reasoning_details"] = [
                    {
                        "type": "reasoning.text",
                        "id": "reasoning-text-1",
                        "format": "MiniMax-response-v1",
                        "index": 0,
                        "text": message["reasoning_content"],
                    }
                ]
        if self.calls:
            message["tool_calls"] = self.calls
        return {"index": index, "message": message, "finish_reason": self.finish_reason}
