"""shaping/tools.py: tools for engines whose chat template has no tool support (rolecall prompts for them)."""

from __future__ import annotations

import json
from typing import Any

from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.shaping.anthropic import to_generation
from rolecall.shaping.tools import tool_instructions
from rolecall.shaping.traits import EngineTraits

WEATHER = {
    "name": "get_weather",
    "description": "Weather now",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
ASK = {"role": "user", "content": "Weather in Oslo?"}


def shape(messages: list[dict], prompted: str = "always", **fields: Any) -> GenerationRequest:
    body = json.dumps({"model": "m", "max_tokens": 16, "messages": messages, **fields}).encode()
    traits = EngineTraits(model_name="m", prompted_tools=prompted)  # type: ignore[arg-type]
    return to_generation(parse_body(MessagesRequest, body), traits)


def test_auto_choice_writes_the_signatures_into_the_system_turn_and_parses_hermes() -> None:
    generation = shape([ASK], system="Be brief.", tools=[WEATHER])
    system = generation.turns[0]
    assert system.role == "system" and system.text.startswith("Be brief.\n\n# Tools\n")
    assert (
        '{"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": '
        '{"city": {"type": "string"}}, "required": ["city"]}}' in system.text
    )
    assert generation.tool_syntax == "hermes" and generation.output_schema is None
    assert generation.tools[0].name == "get_weather"  # kept: the parser reads their schemas


def test_forced_tool_is_constrained_to_that_tool() -> None:
    generation = shape([ASK], tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "get_weather"})
    assert generation.tool_syntax == "json"
    assert generation.output_schema == {
        "type": "object",
        "properties": {"name": {"const": "get_weather"}, "arguments": WEATHER["input_schema"]},
        "required": ["name", "arguments"],
    }
    assert "get_time" not in generation.turns[0].text


def test_any_choice_admits_each_tool() -> None:
    generation = shape([ASK], tools=[WEATHER, TIME], tool_choice={"type": "any"})
    options = generation.output_schema["anyOf"]  # type: ignore[index]
    assert [option["properties"]["name"]["const"] for option in options] == ["get_weather", "get_time"]


def test_choice_none_offers_nothing() -> None:
    generation = shape([ASK], system="S", tools=[WEATHER], tool_choice={"type": "none"})
    assert generation.turns[0] == Turn("system", "S")
    assert generation.tool_syntax is None and generation.output_schema is None


def test_history_calls_and_results_become_markup_text() -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 degrees"}
    generation = shape(
        [
            ASK,
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, call]},
            {"role": "user", "content": [result, {"type": "text", "text": "And tomorrow?"}]},
        ],
        tools=[WEATHER],
    )
    assert [turn.role for turn in generation.turns] == ["system", "user", "assistant", "user"]
    assert generation.turns[2] == Turn(
        "assistant", 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    assert generation.turns[3] == Turn("user", "<tool_response>\n4 degrees\n</tool_response>\nAnd tomorrow?")


def test_engines_with_template_tools_get_them_natively() -> None:
    generation = shape([ASK], prompted="never", system="S", tools=[WEATHER], tool_choice={"type": "any"})
    assert generation.turns[0] == Turn("system", "S")
    assert generation.tool_syntax is None and generation.output_schema is None and generation.tool_mode == "required"


def test_instructions_follow_the_role_play_setup() -> None:
    generation = shape([{"role": "group", "content": "Harbour"}, ASK], system="You are Mira.", tools=[WEATHER])
    assert generation.turns[0].text == "You are Mira.\n\nScene: Harbour\n\n" + tool_instructions(generation.tools)


def test_forced_policy_prompts_only_for_a_forced_choice() -> None:
    auto = shape([ASK], prompted="forced", system="S", tools=[WEATHER])
    assert auto.turns[0] == Turn("system", "S") and auto.tool_syntax is None
    forced = shape([ASK], prompted="forced", system="S", tools=[WEATHER], tool_choice={"type": "any"})
    assert "# Tools" in forced.turns[0].text and forced.tool_syntax == "json"
