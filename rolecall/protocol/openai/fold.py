"""The non-streaming body: the fold of a request's chunks into one `chat.completion` object. Folding the
very chunks a stream sends keeps the two forms identical (one pipeline)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rolecall.protocol.openai.errors import SUCCESS


def fold(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`chat.completion` from `chat.completion.chunk`s (the usage chunk included), choices by index."""
    head: dict[str, Any] = {}
    choices: dict[int, _FoldedChoice] = {}
    usage = None
    for chunk in chunks:
        head = head or chunk
        usage = chunk.get("usage") or usage
        for item in chunk["choices"]:
            choices.setdefault(item["index"], _FoldedChoice()).add(item)
    return {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [choices[index].body(index) for index in sorted(choices)],
        "usage": usage,
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
