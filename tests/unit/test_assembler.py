"""service/assembler.BlockAssembler, through the Anthropic encoder, and the fold: the content-block lifecycle,
without a server."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from rolecall.core.chunks import ToolCallChunk
from rolecall.core.events import OutputEvent
from rolecall.protocol.anthropic import events as ev
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.fold import fold
from rolecall.service.assembler import BlockAssembler

SIGNATURE = "f" * 64


def encoded(events: list[OutputEvent]) -> list[dict]:
    """The neutral block events as the Anthropic door sends them."""
    encoder = MessageEncoder("m")
    return [sse for event in events for sse in encoder.encode(event)]


def assemble(*steps: tuple[str, Any]) -> list[dict]:
    assembler = BlockAssembler(lambda text: SIGNATURE)
    events: list[OutputEvent] = []
    for kind, value in steps:
        if kind == "text":
            events += assembler.text(value)
        elif kind == "thinking":
            events += assembler.thinking(value)
        else:
            events += assembler.tool_call(value)
    return encoded(events + assembler.finish())


def blocks(events: list[dict]) -> list[dict]:
    """Fold the block events the way the SDKs do."""
    content: list[dict] = []
    partial: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_start":
            assert event["index"] == len(content)
            content.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            block, delta = content[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif event["type"] == "content_block_stop" and event["index"] in partial:
            content[event["index"]]["input"] = json.loads(partial.pop(event["index"]))
    for block in content:
        if block["type"] == "tool_use":
            assert re.fullmatch(r"toolu_[0-9A-Za-z]{24}", block.pop("id"))
    return content


def lifecycle(events: list[dict]) -> list[str]:
    return [
        e["type"].removeprefix("content_block_") + (":" + e["delta"]["type"] if "delta" in e else "") for e in events
    ]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], [{"type": "text", "text": ""}]),
        ([("text", "Hello"), ("text", " world")], [{"type": "text", "text": "Hello world"}]),
        (
            [("thinking", "  \n"), ("thinking", "Let me"), ("thinking", " think.\n\n"), ("text", "\n\nHi")],
            [{"type": "thinking", "thinking": "Let me think.", "signature": SIGNATURE}, {"type": "text", "text": "Hi"}],
        ),
        # The separator may come as its own chunks.
        (
            [("thinking", "Plan."), ("text", "\n"), ("text", "\n"), ("text", "Answer\n\nmore")],
            [
                {"type": "thinking", "thinking": "Plan.", "signature": SIGNATURE},
                {"type": "text", "text": "Answer\n\nmore"},
            ],
        ),
        # Whitespace inside reasoning is kept; only the edges are stripped.
        (
            [("thinking", "a "), ("thinking", " "), ("thinking", "b\n")],
            [{"type": "thinking", "thinking": "a  b", "signature": SIGNATURE}],
        ),
        # Reasoning that is only whitespace makes no block.
        ([("thinking", " \n "), ("text", "x")], [{"type": "text", "text": "x"}]),
        # Text that does not follow reasoning keeps its leading newlines.
        ([("text", "\n\nx")], [{"type": "text", "text": "\n\nx"}]),
        (
            [("thinking", "t"), ("tool", ToolCallChunk(0, "c1", "f", '{"a": 1}'))],
            [
                {"type": "thinking", "thinking": "t", "signature": SIGNATURE},
                {"type": "tool_use", "name": "f", "input": {"a": 1}},
            ],
        ),
        (
            [
                ("text", "Checking."),
                ("tool", ToolCallChunk(0, "c1", "get_weather", '{"loc')),
                ("tool", ToolCallChunk(0, None, None, 'ation": "Pa')),
                ("tool", ToolCallChunk(0, None, None, 'ris"}')),
            ],
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "name": "get_weather", "input": {"location": "Paris"}},
            ],
        ),
        # Two calls at index 0 with different ids (some servers number every call 0).
        (
            [("tool", ToolCallChunk(0, "a", "f", '{"x": 1}')), ("tool", ToolCallChunk(0, "b", "g", '{"y": 2}'))],
            [
                {"type": "tool_use", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "name": "g", "input": {"y": 2}},
            ],
        ),
        # Two calls by index, fragments without ids continue the open call.
        (
            [
                ("tool", ToolCallChunk(0, "a", "f", "{")),
                ("tool", ToolCallChunk(0, None, None, "}")),
                ("tool", ToolCallChunk(1, "b", "g", "{}")),
            ],
            [{"type": "tool_use", "name": "f", "input": {}}, {"type": "tool_use", "name": "g", "input": {}}],
        ),
    ],
)
def test_blocks(steps: list, expected: list[dict]) -> None:
    assert blocks(assemble(*steps)) == expected


def test_thinking_lifecycle_has_one_signature_just_before_stop() -> None:
    events = assemble(("thinking", "a"), ("thinking", "b"), ("text", "c"))
    assert lifecycle(events) == [
        "start",
        "delta:thinking_delta",
        "delta:thinking_delta",
        "delta:signature_delta",
        "stop",
        "start",
        "delta:text_delta",
        "stop",
    ]
    assert events[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}


def test_signature_is_over_the_emitted_thinking() -> None:
    signed: list[str] = []
    assembler = BlockAssembler(lambda text: signed.append(text) or "0" * 64)
    assembler.thinking("\n  first ")
    assembler.thinking("second  \n")
    assembler.text("x")
    assert signed == ["first second"]


def test_tool_block_starts_with_empty_input_and_fresh_id() -> None:
    events = assemble(
        ("tool", ToolCallChunk(0, "call_engine_id", "f", '{"a"')), ("tool", ToolCallChunk(0, None, None, ": 1}"))
    )
    start = events[0]
    assert start["content_block"]["input"] == {} and start["content_block"]["id"] != "call_engine_id"
    assert [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"] == ["{", '"a": 1}']


def test_partial_json_never_ends_inside_an_escape_sequence() -> None:
    """A fragment may end mid-escape (`\\` | `n`, `\\u00` | `e9`); the SDK re-parses every prefix, so hold it back."""
    from tests.support.sse import is_json_prefix

    arguments = ['{"text": "line1\\', "nline2 caf\\u00", 'e9 \\"q\\', '"", "n": 1}']
    events = assemble(
        *[
            ("tool", ToolCallChunk(0, "c" if i == 0 else None, "f" if i == 0 else None, part))
            for i, part in enumerate(arguments)
        ]
    )
    so_far = ""
    for event in events:
        if event["type"] == "content_block_delta":
            so_far += event["delta"]["partial_json"]
            assert is_json_prefix(so_far), so_far
    assert json.loads(so_far) == {"text": 'line1\nline2 café "q"', "n": 1}


def test_no_block_means_one_empty_text_block() -> None:
    assembler = BlockAssembler(lambda text: SIGNATURE)
    assert encoded(assembler.finish()) == [ev.block_start(0, {"type": "text", "text": ""}), ev.block_stop(0)]


def test_fold_builds_the_message() -> None:
    async def stream():
        yield ev.message_start("msg_x", "MiniMax-M2.7", 12)
        yield ev.PING
        for event in assemble(
            ("thinking", "hmm"),
            ("text", "Hi"),
            ("tool", ToolCallChunk(0, "c", "f", '{"b": 1,')),
            ("tool", ToolCallChunk(0, None, None, ' "a": 2}')),
        ):
            yield event
        yield ev.message_delta("tool_use", None, ev.usage(10, 7, 2))
        yield ev.MESSAGE_STOP

    message = asyncio.run(fold(stream()))
    tool = message["content"][2]
    assert list(tool["input"]) == ["b", "a"]
    tool["id"] = "ID"
    assert message == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "MiniMax-M2.7",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": SIGNATURE},
            {"type": "text", "text": "Hi"},
            {"type": "tool_use", "id": "ID", "name": "f", "input": {"b": 1, "a": 2}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": ev.usage(10, 7, 2),
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }


def test_arguments_cut_mid_escape_are_closed_into_an_object() -> None:
    events = assemble(("tool", ToolCallChunk(0, "c", "f", '{"a": "x\\')))
    sent = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(sent) == {"a": "x"}
    assert events[-1]["type"] == "content_block_stop"


def test_backslashes_outside_escapes_are_not_held() -> None:
    # An escaped backslash followed by a quote closes the string; nothing is held after it.
    events = assemble(
        ("tool", ToolCallChunk(0, "c", "f", '{"p": "C:\\\\"')), ("tool", ToolCallChunk(0, None, None, "}"))
    )
    deltas = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ['{"p": "C:\\\\"', "}"]
