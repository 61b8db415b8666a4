"""The non-streaming body is the fold of the stream events, exactly as the SDKs accumulate them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from rolecall.protocol.anthropic.events import SUCCESS, Event


async def fold(events: AsyncIterator[Event]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    tool_json: dict[int, list[str]] = {}
    async for event in events:
        kind = event["type"]
        if kind == "content_block_delta":
            block = message["content"][event["index"]]
            delta = event["delta"]
            delta_kind = delta["type"]
            if delta_kind == "text_delta":
                block["text"] += delta["text"]
            elif delta_kind == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta_kind == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta_kind == "input_json_delta":
                tool_json.setdefault(event["index"], []).append(delta["partial_json"])
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_stop":
            parts = tool_json.pop(event["index"], None)
            if parts is not None and "".join(parts):
                message["content"][event["index"]]["input"] = orjson.loads("".join(parts))
        elif kind == "message_start":
            message = dict(event["message"], content=[])
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = event["usage"]
    message["base_resp"] = SUCCESS
    return message
