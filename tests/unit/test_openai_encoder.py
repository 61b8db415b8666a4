"""The OpenAI chunk encoder and its fold, fed neutral events directly: the chunk grammar (checked by the
same `check_chunks` every streamed test runs), reasoning in its three styles, tool calls, several choices."""

from __future__ import annotations

import json

import pytest

from rolecall.core.events import BlockDelta, BlockSigned, BlockStarted, BlockStopped, Finished, OutputEvent, Started
from rolecall.core.usage import Usage
from rolecall.protocol.minimax.responses import closing_frame
from rolecall.protocol.openai.encoder import ChunkEncoder, reasoning_style
from rolecall.protocol.openai.fold import fold
from tests.support.chunks import check_chunks

THINK_THEN_ANSWER: list[OutputEvent] = [
    Started(Usage(20, 5)),
    BlockStarted(0, "thinking"),
    BlockDelta(0, "thinking", "The user"),
    BlockDelta(0, "thinking", " greets."),
    BlockSigned(0, "ab" * 32),
    BlockStopped(0),
    BlockStarted(1, "text"),
    BlockDelta(1, "text", "Hello"),
    BlockDelta(1, "text", "!"),
    BlockStopped(1),
    Finished("end", None, Usage(20, 5, 6)),
]

TWO_CALLS: list[OutputEvent] = [
    Started(Usage(30)),
    BlockStarted(0, "tool_call", "get_weather"),
    BlockDelta(0, "tool_call", '{"city": "Pa'),
    BlockDelta(0, "tool_call", 'ris"}'),
    BlockStopped(0),
    BlockStarted(1, "tool_call", "get_time"),
    BlockDelta(1, "tool_call", "{}"),
    BlockStopped(1),
    Finished("tool_calls", None, Usage(30, 0, 12)),
]


def _encode(encoder: ChunkEncoder, events: list[tuple[int, OutputEvent]]) -> list[dict]:
    chunks = [chunk for index, event in events for chunk in encoder.encode(index, event)]
    return chunks + encoder.closing()


def _sse(chunks: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def test_text_and_reasoning_field_by_default() -> None:
    encoder = ChunkEncoder("MiniMax-M2.7", style=reasoning_style(None), include_usage=True)
    chunks = _encode(encoder, [(0, e) for e in THINK_THEN_ANSWER])
    check_chunks(_sse(chunks), usage=True)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    body = fold(chunks)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "reasoning_content": "The user greets."},
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 6,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert body["base_resp"] == {"status_code": 0, "status_msg": "success"}


def test_reasoning_split_adds_reasoning_details() -> None:
    encoder = ChunkEncoder("m", style=reasoning_style(True), include_usage=True)
    chunks = _encode(encoder, [(0, e) for e in THINK_THEN_ANSWER])
    check_chunks(_sse(chunks), usage=True)
    assert chunks[1]["choices"][0]["delta"]["reasoning_details"][0]["text"] == "The user"
    message = fold(chunks)["choices"][0]["message"]
    assert message["reasoning_content"] == "The user greets."
    assert message["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "id": "reasoning-text-1",
            "format": "MiniMax-response-v1",
            "index": 0,
            "text": "The user greets.",
        }
    ]


def test_reasoning_split_false_puts_think_tags_in_the_content() -> None:
    encoder = ChunkEncoder("m", style=reasoning_style(False))
    chunks = _encode(encoder, [(0, e) for e in THINK_THEN_ANSWER])
    check_chunks(_sse(chunks))
    message = fold(chunks)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello!"}


def test_tool_calls_carry_id_type_and_name_first_then_argument_fragments() -> None:
    encoder = ChunkEncoder("m", include_usage=True)
    chunks = _encode(encoder, [(0, e) for e in TWO_CALLS])
    check_chunks(_sse(chunks), usage=True)
    first = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert chunks[2]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}
    choice = fold(chunks)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert len({c["id"] for c in calls}) == 2


@pytest.mark.parametrize(("reason", "expected"), [("stop_sequence", "stop"), ("length", "length"), ("end", "stop")])
def test_finish_reasons(reason: str, expected: str) -> None:
    encoder = ChunkEncoder("m")
    events = [Started(Usage(3)), BlockStarted(0, "text"), BlockDelta(0, "text", "x"), BlockStopped(0)]
    chunks = _encode(encoder, [(0, e) for e in [*events, Finished(reason, None, Usage(3, 0, 1))]])  # type: ignore[arg-type]
    check_chunks(_sse(chunks))
    assert chunks[-1]["choices"][0]["finish_reason"] == expected


def test_several_choices_interleave_and_fold_by_index() -> None:
    encoder = ChunkEncoder("m", n=2, include_usage=True, ai_name="诸葛亮")
    answer = [Started(Usage(10, 4)), BlockStarted(0, "text"), BlockDelta(0, "text", "A"), BlockStopped(0)]
    events = [(i, e) for e in answer for i in (1, 0)]
    events += [(0, Finished("end", None, Usage(10, 4, 1))), (1, Finished("length", None, Usage(10, 0, 2)))]
    chunks = _encode(encoder, events)
    check_chunks(_sse(chunks), n=2, usage=True)
    body = fold(chunks)
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "length"]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "A", "name": "诸葛亮"}
    # One prompt, both outputs.
    assert body["usage"]["prompt_tokens"] == 10 and body["usage"]["completion_tokens"] == 3


def test_minimax_closing_frame_is_the_fold_with_usage() -> None:
    encoder = ChunkEncoder("m")
    chunks = _encode(encoder, [(0, e) for e in THINK_THEN_ANSWER])
    frame = closing_frame(fold(chunks), encoder.usage())
    check_chunks(_sse([*chunks, frame]), closing_frame=True)
    assert frame["choices"][0]["message"]["content"] == "Hello!"
    assert frame["usage"]["prompt_tokens"] == 20


def test_a_stream_cut_by_an_error_is_still_well_formed() -> None:
    encoder = ChunkEncoder("m")
    chunks = _encode(encoder, [(0, e) for e in THINK_THEN_ANSWER[:4]])
    error = {"error": {"message": "Overloaded (1002)", "type": "server_overloaded", "param": None, "code": "1002"}}
    frames = check_chunks(_sse([*chunks, error]))
    assert frames[-1] == error
