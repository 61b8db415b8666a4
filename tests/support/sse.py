"""Parse an SSE byte stream and check every invariant the SDKs and Claude Code depend on.

Every streaming test runs `check_stream`.
"""

from __future__ import annotations

import json
from typing import Any

import jiter
from anthropic.lib.streaming._messages import accumulate_event  # noqa: F401  (imported to fail fast if moved)

DELTA_FOR_BLOCK = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


def parse_frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event:` / `data:` frames, in order. Fails on a frame without an `event:` line."""
    frames = []
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), "stream must end on a frame boundary"
    for block in text.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: "), f"frame without event line: {block!r}"
        assert len(lines) == 2 and lines[1].startswith("data: "), f"malformed frame: {block!r}"
        frames.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return frames


def is_json_prefix(text: str) -> bool:
    """True if `text` can be extended into a valid JSON value (checked by closing it)."""
    if not text.strip():
        return True
    stack, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return False
    candidate = text + ('"' if in_string else "")
    if escaped:
        return False
    candidates = [candidate]
    # Completions of a value cut short: a literal, a number ("1." / "-" / "2e"), or a missing value.
    literal_rests = [word[k:] for word in ("true", "false", "null") for k in range(1, len(word))]
    for tail in ("", "null", '""', "0", ':""', ": null", '"":null', *literal_rests):
        candidates.append(candidate.rstrip().rstrip(",") + tail)
        candidates.append(candidate + tail)
    for base in candidates:
        try:
            json.loads(base + "".join(reversed(stack)))
            return True
        except json.JSONDecodeError:
            continue
    return False


def check_stream(raw: bytes) -> list[dict[str, Any]]:
    """Assert the stream grammar and invariants; return the event payloads."""
    frames = parse_frames(raw)
    events = []
    for name, data in frames:
        assert data["type"] == name, f"event line {name!r} != data.type {data['type']!r}"
        events.append(data)
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    assert kinds[0] == "message_start", "message_start must come first"
    assert kinds.count("message_start") == 1
    if kinds[-1] == "error":
        error = events[-1]
        assert error["error"]["type"] and error["error"]["message"] and "base_resp" in error
        assert "message_stop" not in kinds and "message_delta" not in kinds
        return events
    assert kinds[-2:] == ["message_delta", "message_stop"], (
        f"stream must end with message_delta, message_stop: {kinds[-3:]}"
    )
    start = events[0]["message"]
    for key in ("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"):
        assert key in start, f"message_start.message lacks {key}"
    assert start["type"] == "message" and start["role"] == "assistant" and start["content"] == []
    assert start["usage"]["input_tokens"] > 0 and start["usage"]["output_tokens"] == 0
    open_index, open_type, next_index = None, None, 0
    json_so_far: dict[int, str] = {}
    signature_seen = False
    for event in events[1:]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None, "a block started while another is open"
            assert event["index"] == next_index, "block indexes must be contiguous from 0"
            open_index, open_type = event["index"], event["content_block"]["type"]
            if open_type == "tool_use":
                assert event["content_block"]["input"] == {}
                json_so_far[open_index] = ""
            if open_type == "thinking":
                assert event["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
                signature_seen = False
            next_index += 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index, "delta for a block that is not open"
            delta_type = event["delta"]["type"]
            assert delta_type in DELTA_FOR_BLOCK[open_type], f"{delta_type} inside a {open_type} block"
            if open_type == "thinking":
                assert not signature_seen, "nothing may follow the signature_delta"
                signature_seen = delta_type == "signature_delta"
            if delta_type == "input_json_delta":
                json_so_far[open_index] += event["delta"]["partial_json"]
                assert is_json_prefix(json_so_far[open_index]), f"not a JSON prefix: {json_so_far[open_index]!r}"
                if json_so_far[open_index]:  # what the Python SDK does after every delta: it must not raise
                    jiter.from_json(json_so_far[open_index].encode(), partial_mode=True)
        elif kind == "content_block_stop":
            assert event["index"] == open_index, "stop for a block that is not open"
            if open_type == "thinking":
                assert signature_seen, "a thinking block must end with its signature_delta"
            if open_type == "tool_use":
                assert isinstance(json.loads(json_so_far[open_index] or "{}"), dict)
            open_index = open_type = None
        elif kind == "message_delta":
            assert open_index is None, "message_delta while a block is open"
            delta, usage = event["delta"], event["usage"]
            assert delta["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence", "tool_use")
            assert "stop_sequence" in delta
            assert (delta["stop_sequence"] is not None) == (delta["stop_reason"] == "stop_sequence")
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                assert isinstance(usage[key], int) and usage[key] >= 0
    assert next_index >= 1, "a message has at least one content block"
    return events
