"""The Messages pipeline end to end over HTTP, driven by the scripted engine (§6.2, §8, §9, §10, §11).

Every scenario runs three ways: raw SSE (checked by `check_stream`), raw JSON, and the anthropic SDK's
stream helper. The non-streaming body must equal the fold of the stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import pytest

from rolecall.core.chunks import FinishChunk, PrefillChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.core.errors import InvalidRequest, Overloaded, UpstreamError
from rolecall.engines.fake import ScriptedEngine, ScriptStep
from tests.support.sse import check_stream

HEX64 = re.compile(r"[0-9a-f]{64}")
MSG_ID = re.compile(r"msg_[0-9A-Za-z]{24}")
TOOL_ID = re.compile(r"toolu_[0-9A-Za-z]{24}")
PROMPT = "one two three four five six seven eight nine ten"  # 10 words + 1 per turn = 11 scripted tokens
PROMPT_TOKENS = 11


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "MiniMax-M2.7", "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}], **fields}


def post_stream(url: str, payload: dict) -> tuple[httpx.Response, list[dict]]:
    response = httpx.post(url + "/v1/messages", json={**payload, "stream": True}, timeout=20)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["request-id"].startswith("req_")
    return response, check_stream(response.content)


def post_json(url: str, payload: dict) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json=payload, timeout=20)


def sdk_final(url: str, payload: dict) -> dict:
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=20)
    with client.messages.stream(**payload) as stream:
        return stream.get_final_message().model_dump(exclude_none=False)


def fold_events(events: list[dict]) -> dict:
    """An independent fold of the SSE events, as the SDKs accumulate them."""
    message: dict = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = json.loads(json.dumps(event["message"]))
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and event["index"] in partial:
            message["content"][event["index"]]["input"] = json.loads(partial.pop(event["index"]))
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = event["usage"]
    return message


def normalized(content: list[dict]) -> list[dict]:
    """Content with the random parts checked and replaced: tool ids, signatures."""
    out = []
    for block in content:
        block = {k: v for k, v in block.items() if v is not None and k not in ("citations", "caller")}
        if block["type"] == "tool_use":
            assert TOOL_ID.fullmatch(block["id"]), block["id"]
            block["id"] = "ID"
        if block["type"] == "thinking":
            assert HEX64.fullmatch(block["signature"]), block["signature"]
            block["signature"] = "SIG"
        out.append(block)
    return out


@dataclass
class Scenario:
    steps: Callable[[], list[ScriptStep]]
    content: list[dict]
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    request: dict = field(default_factory=dict)
    check: Callable[[list[dict]], None] | None = None  # extra assertions on the SSE events


def _thinking_stream_shape(events: list[dict]) -> None:
    kinds = [(e["type"], e.get("delta", {}).get("type")) for e in events if e["type"] != "ping"]
    # thinking block: start, thinking_delta(s), exactly one signature_delta, stop; then the text block.
    assert kinds[1] == ("content_block_start", None) and events[2]["content_block"]["type"] == "thinking"
    signatures = [i for i, k in enumerate(kinds) if k[1] == "signature_delta"]
    assert len(signatures) == 1
    assert kinds[signatures[0] + 1] == ("content_block_stop", None)
    assert all(k[1] == "thinking_delta" for k in kinds[2 : signatures[0]])
    texts = [e["delta"]["text"] for e in events if e.get("delta", {}).get("type") == "text_delta"]
    assert not texts[0].startswith("\n")


def _no_partial_stop(events: list[dict]) -> None:
    streamed = "".join(e["delta"]["text"] for e in events if e.get("delta", {}).get("type") == "text_delta")
    assert streamed == "Hello "
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}


def _tool_fragments(events: list[dict]) -> None:
    fragments = [e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta"]
    assert len(fragments) >= 3, "arguments arrive as several input_json_delta events"
    start = next(e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use")
    assert start["content_block"]["input"] == {} and start["content_block"]["name"] == "get_weather"


def _usage(events: list[dict]) -> None:
    start = events[0]["message"]["usage"]
    assert start["input_tokens"] == PROMPT_TOKENS and start["output_tokens"] == 0
    final = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert (final["input_tokens"], final["cache_read_input_tokens"], final["output_tokens"]) == (7, 4, 9)
    assert final["cache_creation_input_tokens"] == 0


def _cached_from_the_start(events: list[dict]) -> None:
    """The engine told the cached part before the first token: message_start has the split already."""
    start = events[0]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"], start["output_tokens"]) == (
        PROMPT_TOKENS - 4,
        4,
        0,
    )
    final = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert (final["input_tokens"], final["cache_read_input_tokens"]) == (PROMPT_TOKENS - 4, 4)


WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}

SCENARIOS = {
    "text": Scenario(
        lambda: [TextChunk("Hello"), TextChunk(" world"), FinishChunk("stop"), UsageChunk(PROMPT_TOKENS, 2)],
        [{"type": "text", "text": "Hello world"}],
    ),
    "thinking_then_text": Scenario(
        lambda: [
            ReasoningChunk("\n  "),
            ReasoningChunk("The user says"),
            ReasoningChunk(" hi.\n"),
            ReasoningChunk("Greet back.\n\n"),
            TextChunk("\n\n"),
            TextChunk("Hello!"),
            TextChunk(" How can I help?"),
            FinishChunk("stop"),
            UsageChunk(PROMPT_TOKENS, 12),
        ],
        [
            {"type": "thinking", "thinking": "The user says hi.\nGreet back.", "signature": "SIG"},
            {"type": "text", "text": "Hello! How can I help?"},
        ],
        check=_thinking_stream_shape,
    ),
    "thinking_separator_in_one_chunk": Scenario(
        lambda: [ReasoningChunk("Plan."), TextChunk("\n\nAnswer."), FinishChunk("stop")],
        [{"type": "thinking", "thinking": "Plan.", "signature": "SIG"}, {"type": "text", "text": "Answer."}],
        check=_thinking_stream_shape,
    ),
    "thinking_disabled": Scenario(
        lambda: [ReasoningChunk("secret plan"), TextChunk("Hello!"), FinishChunk("stop")],
        [{"type": "text", "text": "Hello!"}],
        request={"thinking": {"type": "disabled"}},
    ),
    "thinking_disabled_separator_dropped": Scenario(
        lambda: [ReasoningChunk("secret plan"), TextChunk("\n\n"), TextChunk("Hello!"), FinishChunk("stop")],
        [{"type": "text", "text": "Hello!"}],
        request={"thinking": {"type": "disabled"}},
    ),
    "thinking_enabled": Scenario(
        lambda: [ReasoningChunk("plan"), TextChunk("ok"), FinishChunk("stop")],
        [{"type": "thinking", "thinking": "plan", "signature": "SIG"}, {"type": "text", "text": "ok"}],
        request={"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
    ),
    "tool_call_awkward_splits": Scenario(
        lambda: [
            TextChunk("Let me check."),
            ToolCallChunk(0, "call_1", "get_weather", '{"loc'),  # mid-key
            ToolCallChunk(0, None, None, 'ation": "Pa'),  # mid-string
            ToolCallChunk(0, None, None, 'ris, \\"Fr'),  # mid-string, with an escape
            ToolCallChunk(0, None, None, 'ance\\", caf\\u00'),  # cut inside a \\u escape
            ToolCallChunk(0, None, None, 'e9", "unit": "c", "days": [1, '),
            ToolCallChunk(0, None, None, "2]}"),
            FinishChunk("tool_calls"),
            UsageChunk(PROMPT_TOKENS, 20),
        ],
        [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "ID",
                "name": "get_weather",
                "input": {"location": 'Paris, "France", café', "unit": "c", "days": [1, 2]},
            },
        ],
        stop_reason="tool_use",
        request={"tools": [WEATHER_TOOL]},
        check=_tool_fragments,
    ),
    "two_tool_calls_at_index_0": Scenario(
        lambda: [
            ToolCallChunk(0, "call_a", "get_weather", '{"location": '),
            ToolCallChunk(0, None, None, '"Oslo"}'),
            ToolCallChunk(0, "call_b", "get_weather", '{"location": "Rome"}'),
            FinishChunk("tool_calls"),
        ],
        [
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Oslo"}},
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Rome"}},
        ],
        stop_reason="tool_use",
        request={"tools": [WEATHER_TOOL]},
    ),
    "tool_call_finish_stop_is_still_tool_use": Scenario(
        lambda: [ToolCallChunk(0, "c", "get_weather", "{}"), FinishChunk("stop")],
        [{"type": "tool_use", "id": "ID", "name": "get_weather", "input": {}}],
        stop_reason="tool_use",
        request={"tools": [WEATHER_TOOL]},
    ),
    "thinking_then_tool": Scenario(
        lambda: [
            ReasoningChunk("need weather"),
            ToolCallChunk(0, "c", "get_weather", '{"location": "Oslo"}'),
            FinishChunk("tool_calls"),
        ],
        [
            {"type": "thinking", "thinking": "need weather", "signature": "SIG"},
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Oslo"}},
        ],
        stop_reason="tool_use",
        request={"tools": [WEATHER_TOOL]},
    ),
    "stop_sequence_straddles_chunks": Scenario(
        lambda: [TextChunk("Hello ST"), TextChunk("OP and more"), TextChunk(" text"), FinishChunk("stop")],
        [{"type": "text", "text": "Hello "}],
        stop_reason="stop_sequence",
        stop_sequence="STOP",
        request={"stop_sequences": ["STOP", "NEVER"]},
        check=_no_partial_stop,
    ),
    "stop_sequence_prefix_released": Scenario(
        lambda: [TextChunk("a ST"), TextChunk("ORM"), FinishChunk("stop")],
        [{"type": "text", "text": "a STORM"}],
        request={"stop_sequences": ["STOP"]},
    ),
    "stop_sequence_held_at_end_released": Scenario(
        lambda: [TextChunk("ends with ST"), FinishChunk("stop")],
        [{"type": "text", "text": "ends with ST"}],
        request={"stop_sequences": ["STOP"]},
    ),
    "stop_sequence_not_matched_in_thinking": Scenario(
        lambda: [ReasoningChunk("maybe STOP here"), TextChunk("fine"), FinishChunk("stop")],
        [{"type": "thinking", "thinking": "maybe STOP here", "signature": "SIG"}, {"type": "text", "text": "fine"}],
        request={"stop_sequences": ["STOP"]},
    ),
    "length": Scenario(
        lambda: [TextChunk("cut"), TextChunk(" off"), FinishChunk("length")],
        [{"type": "text", "text": "cut off"}],
        stop_reason="max_tokens",
    ),
    "length_during_tool_call": Scenario(
        lambda: [ToolCallChunk(0, "c", "get_weather", "{}"), FinishChunk("length")],
        [{"type": "tool_use", "id": "ID", "name": "get_weather", "input": {}}],
        stop_reason="max_tokens",
        request={"tools": [WEATHER_TOOL]},
    ),
    "no_content": Scenario(
        lambda: [FinishChunk("stop"), UsageChunk(PROMPT_TOKENS, 1)],
        [{"type": "text", "text": ""}],
    ),
    "nothing_at_all": Scenario(lambda: [], [{"type": "text", "text": ""}]),
    "only_whitespace_reasoning": Scenario(
        lambda: [ReasoningChunk("  \n\n "), FinishChunk("stop")],
        [{"type": "text", "text": ""}],
    ),
    "usage_with_cache": Scenario(
        lambda: [TextChunk("ok"), FinishChunk("stop"), UsageChunk(PROMPT_TOKENS, 9, 4)],
        [{"type": "text", "text": "ok"}],
        check=_usage,
    ),
    "prefill_split_in_message_start": Scenario(
        lambda: [PrefillChunk(4), TextChunk("ok"), FinishChunk("stop"), UsageChunk(PROMPT_TOKENS, 1, 4)],
        [{"type": "text", "text": "ok"}],
        check=_cached_from_the_start,
    ),
    # Cut at a stop sequence before the engine's usage arrives: the early split still counts.
    "prefill_split_kept_at_a_stop_sequence": Scenario(
        lambda: [
            PrefillChunk(4),
            TextChunk("Hello STOP"),
            TextChunk(" more"),
            FinishChunk("stop"),
            UsageChunk(11, 3, 0),
        ],
        [{"type": "text", "text": "Hello "}],
        stop_reason="stop_sequence",
        stop_sequence="STOP",
        request={"stop_sequences": ["STOP"]},
        check=_cached_from_the_start,
    ),
    "inline_think_tags_split_anywhere": Scenario(
        lambda: [
            TextChunk("\n<thi"),
            TextChunk("nk>The user"),
            TextChunk(" says hi.</th"),
            TextChunk("ink>\n\nHel"),
            TextChunk("lo!"),
            FinishChunk("stop"),
        ],
        [{"type": "thinking", "thinking": "The user says hi.", "signature": "SIG"}, {"type": "text", "text": "Hello!"}],
        check=_thinking_stream_shape,
    ),
    "inline_think_hidden_when_disabled": Scenario(
        lambda: [TextChunk("<think>secret</think>"), TextChunk("\n\nHello!"), FinishChunk("stop")],
        [{"type": "text", "text": "Hello!"}],
        request={"thinking": {"type": "disabled"}},
    ),
    "think_opened_by_the_template": Scenario(
        lambda: [TextChunk("Plan: greet"), TextChunk(".</think>Hi."), FinishChunk("stop")],
        [{"type": "thinking", "thinking": "Plan: greet.", "signature": "SIG"}, {"type": "text", "text": "Hi."}],
        request={"model": "scripted-r1"},
    ),
    "think_tags_left_alone_for_field_models": Scenario(
        lambda: [TextChunk("<think>x</think>y"), FinishChunk("stop")],
        [{"type": "text", "text": "<think>x</think>y"}],
        request={"model": "scripted-hermes"},
    ),
    "reasoning_dropped_for_none_models": Scenario(
        lambda: [ReasoningChunk("hmm"), TextChunk("Hi."), FinishChunk("stop")],
        [{"type": "text", "text": "Hi."}],
        request={"model": "scripted-plain"},
    ),
    "minimax_tool_markup": Scenario(
        lambda: [
            TextChunk("</think>Checking.\n<minimax:tool"),
            TextChunk('_call>\n<invoke name="get_weather">\n<para'),
            TextChunk('meter name="location">Oslo</parameter>\n<parameter name="days">3</param'),
            TextChunk("eter>\n</invoke>\n</minimax:tool_call>"),
            FinishChunk("stop"),
        ],
        [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Oslo", "days": 3}},
        ],
        stop_reason="tool_use",
        request={
            "model": "scripted-r1",
            "tools": [
                {
                    **WEATHER_TOOL,
                    "input_schema": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
                    },
                }
            ],
        },
    ),
    "hermes_tool_markup_two_calls": Scenario(
        lambda: [
            TextChunk('<tool_call>\n{"name": "get_weather", "arg'),
            TextChunk('uments": {"location": "Rome"}}\n</tool'),
            TextChunk('_call>\n<tool_call>{"name": "get_weather", "arguments": {"location": "Oslo"}}</tool_call>'),
            FinishChunk("stop"),
        ],
        [
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Rome"}},
            {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Oslo"}},
        ],
        stop_reason="tool_use",
        request={"model": "scripted-hermes", "tools": [WEATHER_TOOL]},
    ),
    "hermes_markup_single_call_when_parallel_disabled": Scenario(
        lambda: [
            TextChunk(
                '<tool_call>{"name": "get_weather", "arguments": {"location": "Rome"}}</tool_call>'
                '<tool_call>{"name": "get_weather", "arguments": {"location": "Oslo"}}</tool_call>'
            ),
            FinishChunk("stop"),
        ],
        [{"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Rome"}}],
        stop_reason="tool_use",
        request={
            "model": "scripted-hermes",
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
    ),
    "native_second_call_ends_the_turn_when_parallel_disabled": Scenario(
        lambda: [
            ToolCallChunk(0, "a", "get_weather", '{"location": "Rome"}'),
            ToolCallChunk(1, "b", "get_weather", '{"location": "Oslo"}'),
            FinishChunk("tool_calls"),
        ],
        [{"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"location": "Rome"}}],
        stop_reason="tool_use",
        request={"tools": [WEATHER_TOOL], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    "markup_stays_text_with_tool_choice_none": Scenario(
        lambda: [TextChunk('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'), FinishChunk("stop")],
        [{"type": "text", "text": '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'}],
        request={"model": "scripted-hermes", "tools": [WEATHER_TOOL], "tool_choice": {"type": "none"}},
    ),
    "claude_alias": Scenario(
        lambda: [TextChunk("hi"), FinishChunk("stop")],
        [{"type": "text", "text": "hi"}],
        request={"model": "claude-3-5-haiku-20241022"},
    ),
}


def _enqueue(engine: ScriptedEngine, scenario: Scenario, times: int) -> None:
    for _ in range(times):
        engine.enqueue(scenario.steps())


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    scenario = SCENARIOS[name]
    payload = body(**scenario.request)
    _enqueue(scripted, scenario, 3)

    _, events = post_stream(scripted_url, payload)
    streamed = fold_events(events)
    if scenario.check:
        scenario.check(events)

    response = post_json(scripted_url, payload)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()

    final = sdk_final(scripted_url, payload)

    for result in (streamed, message, final):
        assert normalized(result["content"]) == scenario.content
        assert result["stop_reason"] == scenario.stop_reason
        assert result["stop_sequence"] == scenario.stop_sequence
        assert result["model"] == payload["model"]
        assert MSG_ID.fullmatch(result["id"])
        assert result["type"] == "message" and result["role"] == "assistant"

    # The JSON body is the fold of the stream: same blocks, same usage, plus base_resp.
    assert message["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert normalized(message["content"]) == normalized(streamed["content"])
    assert message["usage"] == streamed["usage"]
    assert message["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert final["usage"]["input_tokens"] == message["usage"]["input_tokens"]
    assert final["usage"]["output_tokens"] == message["usage"]["output_tokens"]
    assert len(scripted.requests) == 3


def test_usage_without_engine_report_counts_chunks(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("a"), TextChunk("b"), ReasoningChunk("r"), FinishChunk("stop")])
    usage = post_json(scripted_url, body()).json()["usage"]
    assert usage["input_tokens"] == PROMPT_TOKENS and usage["output_tokens"] == 3
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] == 0


def test_thinking_disabled_reasoning_still_counts_as_output(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([ReasoningChunk("x"), ReasoningChunk("y"), TextChunk("z"), FinishChunk("stop")])
    message = post_json(scripted_url, body(thinking={"type": "disabled"})).json()
    assert message["content"] == [{"type": "text", "text": "z"}]
    assert message["usage"]["output_tokens"] == 3
    assert scripted.requests[-1].thinking == "disabled"


def test_signature_is_the_same_for_the_same_thinking(scripted: ScriptedEngine, scripted_url: str) -> None:
    for _ in range(2):
        scripted.enqueue([ReasoningChunk("same"), TextChunk("x"), FinishChunk("stop")])
    first = post_json(scripted_url, body()).json()["content"][0]["signature"]
    second = post_json(scripted_url, body()).json()["content"][0]["signature"]
    assert HEX64.fullmatch(first) and first == second


def test_request_reaches_the_engine_shaped(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("B)"), FinishChunk("stop")])
    payload = body(
        system=[{"type": "text", "text": "x-anthropic-billing-header: cch=1;"}, {"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "Pick one."}, {"role": "assistant", "content": "The answer is ("}],
        temperature=0,
        top_k=1,
        stop_sequences=["\n"],
    )
    message = post_json(scripted_url, payload).json()
    assert message["content"] == [{"type": "text", "text": "B)"}]
    (generation,) = scripted.requests
    assert [t.role for t in generation.turns] == ["system", "user", "assistant"]
    assert generation.turns[0].text == "Be brief." and generation.prefill
    assert (generation.sampling.temperature, generation.sampling.top_k, generation.stop_sequences) == (0, 1, ("\n",))


def test_max_tokens_is_clamped_to_the_context_window(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("x"), FinishChunk("length")])
    message = post_json(scripted_url, body(max_tokens=200000)).json()
    assert message["stop_reason"] == "max_tokens"
    assert scripted.requests[-1].max_tokens == scripted.info.context_window - PROMPT_TOKENS


def test_prompt_too_long_is_a_400_before_the_stream(scripted: ScriptedEngine, scripted_url: str) -> None:
    huge = " ".join(["w"] * scripted.info.context_window)
    for stream in (True, False):
        response = post_json(scripted_url, body(stream=stream, messages=[{"role": "user", "content": huge}]))
        assert response.status_code == 400
        error = response.json()
        assert error["error"]["message"] == (
            f"prompt is too long: {scripted.info.context_window + 1} tokens > {scripted.info.context_window - 1} maximum (1039)"
        )
        assert error["base_resp"]["status_code"] == 1039
    assert scripted.requests == []


# --- failures ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exception", "status", "error_type", "message"),
    [
        (UpstreamError("boom"), 502, "api_error", "boom (1013)"),
        (RuntimeError("secret internals"), 500, "api_error", "Internal server error (1000)"),
        (InvalidRequest("bad output"), 400, "invalid_request_error", "bad output (2013)"),
    ],
)
def test_mid_stream_failure(
    exception: Exception, status: int, error_type: str, message: str, scripted: ScriptedEngine, scripted_url: str
) -> None:
    steps = [ReasoningChunk("thinking"), TextChunk("some text"), exception]

    scripted.enqueue(steps)
    response, events = post_stream(scripted_url, body())
    error = events[-1]
    assert error["type"] == "error"
    assert error["error"] == {"type": error_type, "message": message}
    assert error["request_id"] == response.headers["request-id"]
    assert error["base_resp"]["status_msg"] == message.rsplit(" (", 1)[0]
    kinds = [e["type"] for e in events]
    assert "message_stop" not in kinds and "message_delta" not in kinds
    assert "content_block_delta" in kinds  # the text before the failure was streamed

    scripted.enqueue(steps)
    response = post_json(scripted_url, body())
    assert response.status_code == status
    assert response.json() == {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": response.headers["request-id"],
        "base_resp": {
            "status_code": int(message.rsplit("(", 1)[1].rstrip(")")),
            "status_msg": message.rsplit(" (", 1)[0],
        },
    }
    assert response.headers["x-should-retry"] == ("true" if status >= 500 else "false")

    scripted.enqueue(steps)
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_final(scripted_url, body())
    assert message in str(caught.value)
    assert scripted.active == 0


def test_engine_call_failing_at_once_is_an_http_error_even_when_streaming(
    scripted: ScriptedEngine, scripted_url: str
) -> None:
    scripted.enqueue([Overloaded("every replica is busy", retry_after=3)])
    response = httpx.post(scripted_url + "/v1/messages", json={**body(), "stream": True}, timeout=20)
    assert response.status_code == 529 and response.headers["retry-after"] == "3"
    assert response.json()["error"] == {"type": "overloaded_error", "message": "every replica is busy (1002)"}
    assert scripted.active == 0


def test_failure_after_a_slow_start_is_an_error_event(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([1.3, UpstreamError("engine down")])  # past the early-failure window: the 200 is out
    _, events = post_stream(scripted_url, body())
    assert [e["type"] for e in events if e["type"] != "ping"] == ["message_start", "error"]


def test_pings_fill_a_long_pause(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("a"), 0.7, TextChunk("b"), FinishChunk("stop")])
    _, events = post_stream(scripted_url, body())
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "ping"]
    first, last = kinds.index("content_block_delta"), len(kinds) - 1 - kinds[::-1].index("content_block_delta")
    assert kinds[first:last].count("ping") >= 2, kinds

    scripted.enqueue([TextChunk("a"), 0.7, TextChunk("b"), FinishChunk("stop")])
    assert normalized(sdk_final(scripted_url, body())["content"]) == [{"type": "text", "text": "ab"}]


def test_no_extra_pings_without_a_pause(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("a"), TextChunk("b"), FinishChunk("stop")])
    _, events = post_stream(scripted_url, body())
    assert [e["type"] for e in events].count("ping") == 1


def test_anthropic_prefix_and_query_string(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("hi"), FinishChunk("stop")])
    response = httpx.post(scripted_url + "/anthropic/v1/messages?beta=true", json={**body(), "stream": True})
    assert response.status_code == 200
    check_stream(response.content)


def test_invalid_tool_arguments_are_cut_and_closed(scripted: ScriptedEngine, scripted_url: str) -> None:
    """An engine's broken JSON never becomes a 500 nor an unparsable stream (§7)."""
    script: list[ScriptStep] = [
        ToolCallChunk(0, "call_1", "get_weather", '{"city": "Par'),
        ToolCallChunk(0, None, None, 'is", "days": 2,,'),
        FinishChunk("tool_calls"),
    ]
    body = {
        "model": "MiniMax-M2.7",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    scripted.enqueue(script)
    folded = httpx.post(scripted_url + "/v1/messages", json=body)
    assert folded.status_code == 200
    assert folded.json()["content"][0]["input"] == {"city": "Paris", "days": 2}
    scripted.enqueue(script)
    check_stream(httpx.post(scripted_url + "/v1/messages", json={**body, "stream": True}).content)
