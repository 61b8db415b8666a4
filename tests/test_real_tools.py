"""Tools with the real bundled model. SmolLM2's chat template has no tool section, so rolecall prompts for
tools itself and forces a call with constrained decoding (shaping/tools.py): even a 135M model must then
answer `tool_choice` any/tool with a real `tool_use` holding the schema's required keys."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.real_checks import MODEL, count_tokens, final_delta, post_stream, prompt_total

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Get the local time in a timezone.",
    "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
}
REQUIRED = {tool["name"]: set(tool["input_schema"]["required"]) for tool in (WEATHER, TIME)}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def forced(choice: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 96,
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": choice,
        "top_k": 1,
        **extra,
    }


def assert_forced_call(content: list[dict[str, Any]], names: set[str]) -> dict[str, Any]:
    calls = [block for block in content if block["type"] == "tool_use"]
    assert len(calls) == 1, content
    call = calls[0]
    assert call["id"].startswith("toolu_") and call["name"] in names
    assert isinstance(call["input"], dict) and REQUIRED[call["name"]] <= set(call["input"]), call
    return call


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ({"type": "tool", "name": "get_weather"}, {"get_weather"}),
        ({"type": "tool", "name": "get_time"}, {"get_time"}),
        ({"type": "any"}, {"get_weather", "get_time"}),
    ],
    ids=["tool-weather", "tool-time", "any"],
)
def test_forced_choice_yields_a_tool_use_stream_and_non_stream(
    real_http: httpx.Client, choice: dict[str, Any], names: set[str]
) -> None:
    response = real_http.post("/v1/messages", json=forced(choice))
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["stop_reason"] == "tool_use"
    assert_forced_call(message["content"], names)

    _, events = post_stream(real_http, forced(choice))
    assert final_delta(events)["delta"]["stop_reason"] == "tool_use"
    start = next(e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use")
    assert start["content_block"]["input"] == {}
    arguments = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    streamed = {
        "type": "tool_use",
        "id": start["content_block"]["id"],
        "name": start["content_block"]["name"],
        "input": json.loads(arguments),
    }
    assert_forced_call([streamed], names)


def test_forced_choice_through_the_sdk(real_client: anthropic.Anthropic) -> None:
    with real_client.messages.stream(
        model=MODEL,
        max_tokens=96,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body={"top_k": 1},
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    call = next(block for block in message.content if block.type == "tool_use")
    assert call.name == "get_weather" and {"city", "unit"} <= set(call.input)
    assert call.input["unit"] in ("celsius", "fahrenheit")  # the enum holds: decoding was constrained


def test_tool_result_round_trip(real_http: httpx.Client) -> None:
    first = real_http.post("/v1/messages", json=forced({"type": "tool", "name": "get_weather"})).json()
    call = next(block for block in first["content"] if block["type"] == "tool_use")
    history = [
        *ASK,
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 degrees, light rain"}],
        },
    ]
    payload = {"model": MODEL, "max_tokens": 24, "messages": history, "tools": [WEATHER], "top_k": 1}
    response = real_http.post("/v1/messages", json=payload)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    assert prompt_total(answer["usage"]) == count_tokens(
        real_http, {k: v for k, v in payload.items() if k not in ("max_tokens", "top_k")}
    )


def test_forced_tools_reach_the_prompt_and_count_tokens(real_http: httpx.Client) -> None:
    without = count_tokens(real_http, {"model": MODEL, "messages": ASK})
    forced_count = count_tokens(
        real_http, {"model": MODEL, "messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "any"}}
    )
    assert forced_count > without + 20, "the tool signatures are in the prompt"
    # The bundled model is served with prompted_tools = "forced": in auto mode its template's view holds.
    auto = count_tokens(real_http, {"model": MODEL, "messages": ASK, "tools": [WEATHER]})
    none = count_tokens(
        real_http, {"model": MODEL, "messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "none"}}
    )
    assert auto == none == without


def test_auto_choice_answers_with_valid_blocks(real_http: httpx.Client) -> None:
    payload = {"model": MODEL, "max_tokens": 64, "messages": ASK, "tools": [WEATHER], "top_k": 1}
    message = real_http.post("/v1/messages", json=payload).json()
    assert message["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    for block in message["content"]:
        assert block["type"] in ("text", "tool_use")
        if block["type"] == "tool_use":
            assert block["name"] == "get_weather" and isinstance(block["input"], dict)
    _, events = post_stream(real_http, payload)
    assert final_delta(events)["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
