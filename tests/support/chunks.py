"""Parse an OpenAI-style chunk stream (`data:` frames, `[DONE]`) and check every invariant the SDKs and
strict clients (the Vercel AI SDK, SillyTavern) depend on. Every streamed test on the OpenAI-side doors
runs `check_chunks`."""

from __future__ import annotations

import json
from typing import Any

from tests.support.sse import is_json_prefix

FINISH_REASONS = {"stop", "length", "tool_calls"}


def parse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON frames in order (comment lines, i.e. keep-alives, skipped); the stream must end with
    `data: [DONE]` on a frame boundary, and nothing may follow it."""
    text = raw.decode("utf-8")
    assert text.endswith("data: [DONE]\n\n"), f"stream must end with data: [DONE]: {text[-80:]!r}"
    frames = []
    for block in text.split("\n\n")[:-2]:
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), f"malformed frame: {block!r}"
        assert lines[0] != "data: [DONE]", "[DONE] must be the last frame"
        frames.append(json.loads(lines[0][len("data: ") :]))
    return frames


def check_chunks(raw: bytes, *, n: int = 1, usage: bool = False, closing_frame: bool = False) -> list[dict[str, Any]]:
    """Assert the chunk grammar; return the frames (the error frame or the closing frame included).

    `usage`: a usage chunk with `choices: []` must come last; `closing_frame`: MiniMax's closing
    `chat.completion` frame must follow it."""
    frames = parse_chunks(raw)
    if frames and ("error" in frames[-1] or frames[-1].get("base_resp", {}).get("status_code")):
        _check_chunk_sequence(frames[:-1], n, finished=False)
        return frames
    body = frames.pop() if closing_frame else None
    usage_chunk = frames.pop() if usage else None
    _check_chunk_sequence(frames, n, finished=True)
    if usage_chunk is not None:
        assert usage_chunk["object"] == "chat.completion.chunk" and usage_chunk["choices"] == []
        _check_usage(usage_chunk["usage"])
    if body is not None:
        assert body["object"] == "chat.completion" and body["base_resp"]["status_code"] == 0
        assert len(body["choices"]) == n and "message" in body["choices"][0]
        _check_usage(body["usage"])
    for frame in frames:
        assert "usage" not in frame or frame["usage"] is None, "usage only in the usage chunk"
    return frames + [f for f in (usage_chunk, body) if f is not None]


def _check_chunk_sequence(frames: list[dict[str, Any]], n: int, *, finished: bool) -> None:
    assert frames, "a stream has at least one chunk"
    ids = {frame["id"] for frame in frames}
    assert len(ids) == 1 and frames[0]["id"].startswith("chatcmpl-"), f"one chatcmpl- id for all chunks: {ids}"
    seen_role: set[int] = set()
    finished_choices: set[int] = set()
    calls: dict[tuple[int, int], str] = {}
    for frame in frames:
        assert frame["object"] == "chat.completion.chunk"
        assert isinstance(frame["created"], int) and frame["model"]
        assert len(frame["choices"]) == 1, "one choice per chunk"
        choice = frame["choices"][0]
        index, delta = choice["index"], choice["delta"]
        assert 0 <= index < n, f"choice index {index} out of 0..{n - 1}"
        assert index not in finished_choices, "a chunk after the choice's finish_reason"
        if index not in seen_role:
            assert delta.get("role") == "assistant", "the first chunk of a choice carries role: assistant"
            seen_role.add(index)
        else:
            assert "role" not in delta, "role only in the first chunk of a choice"
        for call in delta.get("tool_calls") or ():
            key = (index, call["index"])
            if key not in calls:
                assert call["id"].startswith("call_") and call["type"] == "function", "id and type on the first delta"
                assert call["function"]["name"], "the tool name on the first delta"
                assert call["index"] == sum(1 for i, _ in calls if i == index), "tool call indexes contiguous"
                calls[key] = call["function"].get("arguments", "")
            else:
                assert set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
                calls[key] += call["function"]["arguments"]
            assert is_json_prefix(calls[key]), f"not a JSON prefix: {calls[key]!r}"
        if choice["finish_reason"] is not None:
            assert choice["finish_reason"] in FINISH_REASONS
            assert delta == {}, "the finish chunk carries no delta"
            finished_choices.add(index)
    if finished:
        assert finished_choices == set(range(n)), "exactly one finish_reason per choice"
        for arguments in calls.values():
            assert isinstance(json.loads(arguments or "{}"), dict), (
                f"tool arguments must be a JSON object: {arguments!r}"
            )


def _check_usage(usage: dict[str, Any]) -> None:
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert isinstance(usage[key], int) and usage[key] >= 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 <= usage["prompt_tokens_details"]["cached_tokens"] <= usage["prompt_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] <= usage["completion_tokens"]
