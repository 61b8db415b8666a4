"""The OpenAI-side conversation rules (front-doors.md §2), with the error each broken rule gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.core.conversation import Turn
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body as parse_anthropic
from rolecall.protocol.openai.validation import parse_request
from rolecall.shaping.anthropic import to_generation as anthropic_generation
from rolecall.shaping.openai import to_generation
from rolecall.shaping.traits import EngineTraits

CALL = {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def shape(messages: list[dict[str, Any]], **fields: Any):  # type: ignore[no-untyped-def]
    body = json.dumps({"model": "m", "messages": messages, **fields}).encode()
    return to_generation(parse_request(body), EngineTraits(model_name="m"))


@pytest.mark.parametrize(
    ("messages", "fields", "error"),
    [
        ([], {}, "messages: at least one message is required"),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "user", "content": "y"},
            ],
            {},
            "messages.1: `tool_calls` ids were found without `tool` messages answering them: call_a.",
        ),
        (
            [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_z", "content": "r"}],
            {},
            "messages.1.tool_call_id: `call_z` does not answer a tool call of the previous assistant message.",
        ),
        ([{"role": "user", "content": None}], {}, "messages.0.content: `user` messages must have non-empty content"),
        ([{"role": "group", "content": ""}, {"role": "user", "content": "x"}], {}, "messages.0.content: `group`"),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "y"},
            ],
            {},
            "messages.1.content: an assistant message needs `content` or `tool_calls`",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            {},
            "messages.0.content.0: image input is not supported by model m",
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            {},
            "messages.0.content.0.type: only text parts are allowed in 'system' messages",
        ),
        ([{"role": "user", "content": "x"}], {"tool_choice": "required"}, "tool_choice: `required` requires"),
        (
            [{"role": "user", "content": "x"}],
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice.function.name: tool 'g' is not defined in tools",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1"}}]},
                {"role": "tool", "tool_call_id": "call_a", "content": "r"},
            ],
            {},
            "messages.1.tool_calls.0.function.arguments: the arguments must be a JSON object",
        ),
    ],
)
def test_broken_rules_are_400s_naming_the_place(messages: list, fields: dict, error: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        shape(messages, **fields)
    assert raised.value.status == 400 and raised.value.message.startswith(error)


def test_several_systems_anywhere_are_never_an_error() -> None:
    turns = shape(
        [
            {"role": "system", "content": "A"},
            {"role": "developer", "content": "B"},
            {"role": "user", "content": "x"},
            {"role": "system", "content": "C"},
            {"role": "system", "name": "Narrator", "content": "D"},
        ]
    ).turns
    # The later ones are notes on the user turn, ahead of its words, as on /v1/messages (shaping/notes.py).
    assert [(t.role, t.text) for t in turns] == [
        ("system", "A\nB"),
        ("user", "[System note: C]\n[System note (Narrator): D]\nx"),
    ]


def test_a_late_system_message_is_a_note_on_the_next_user_turn_on_every_door() -> None:
    """The same late system message renders alike through /v1/chat/completions and /v1/messages."""
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "c"},
    ]
    openai_turns = shape([{"role": "system", "content": "S"}, *messages]).turns
    body = json.dumps({"model": "m", "max_tokens": 8, "system": "S", "messages": messages}).encode()
    anthropic_turns = anthropic_generation(parse_anthropic(MessagesRequest, body), EngineTraits(model_name="m")).turns
    assert openai_turns == anthropic_turns
    assert openai_turns[-1] == Turn("user", "[System note: Be brief.]\nc")


def test_assistant_last_is_a_prefill_and_null_content_is_allowed_with_tool_calls() -> None:
    generation = shape([{"role": "user", "content": "x"}, {"role": "assistant", "content": "Once upon"}])
    assert generation.prefill and generation.turns[-1].text == "Once upon"
    generation = shape(
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "r"}]},
        ],
        tools=TOOLS,
    )
    assert [t.role for t in generation.turns] == ["user", "assistant", "tool"]
    assert generation.turns[-1].tool_call_id == "call_a"


def test_sampling_and_limits_reach_the_generation() -> None:
    generation = shape(
        [{"role": "user", "content": "x"}],
        max_completion_tokens=7,
        max_tokens=9,
        temperature=1.5,
        top_k=0,
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        stop="END",
        response_format={"type": "json_object"},
        parallel_tool_calls=False,
    )
    assert generation.max_tokens == 7  # max_completion_tokens wins
    sampling = generation.sampling
    assert (sampling.temperature, sampling.top_k, sampling.seed) == (1.5, None, 3)
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, -0.5)
    assert generation.stop_sequences == ("END",)
    assert generation.output_schema == {"type": "object"}
    assert generation.parallel_tool_calls is False


def test_response_format_json_schema_is_the_output_schema_and_forced_calls_win() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    assert shape([{"role": "user", "content": "x"}], response_format=fmt).output_schema == schema
    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": "required"}
    )
    forced = to_generation(parse_request(body.encode()), EngineTraits(model_name="m", prompted_tools="forced"))
    assert forced.tool_mode == "required" and forced.tool_syntax == "json"
    assert forced.output_schema is not None and forced.output_schema["properties"]["name"] == {"const": "f"}
