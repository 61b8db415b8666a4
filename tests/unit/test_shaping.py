"""shaping/messages.to_generation: the conversation rules of the wire contract (§4, §5, §7)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from rolecall.core.conversation import GenerationRequest, ToolCall, Turn
from rolecall.core.errors import InvalidRequest
from rolecall.engines.openai_wire import chat_messages
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.shaping.anthropic import to_generation
from rolecall.shaping.traits import EngineTraits

PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
TIME = {"name": "get_time", "input_schema": {"type": "object"}}


def shape(messages: list[dict], vision: bool = False, **fields: Any) -> GenerationRequest:
    # Through the JSON parser, as the server does: key order and shorthand behave as on the wire.
    body = json.dumps({"model": "m", "max_tokens": 16, "messages": messages, **fields}).encode()
    return to_generation(parse_body(MessagesRequest, body), EngineTraits(model_name="m", vision=vision))


def shape_error(messages: list[dict], **fields: Any) -> str:
    with pytest.raises(InvalidRequest) as caught:
        shape(messages, **fields)
    return caught.value.message


def user(content: Any, **extra: Any) -> dict:
    return {"role": "user", "content": content, **extra}


def assistant(content: Any) -> dict:
    return {"role": "assistant", "content": content}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def roles(generation: GenerationRequest) -> list[str]:
    return [turn.role for turn in generation.turns]


# --- system -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("Be brief.", "Be brief."),
        ([text("one"), text("two")], "one\ntwo"),
        (
            [text("x-anthropic-billing-header: cc_version=2.1; cch=abc123;"), text("You are Claude Code.")],
            "You are Claude Code.",
        ),
        ([text("a"), text("x-anthropic-billing-header: cch=1;"), text("b")], "a\nb"),
        ([text("  spaced  ")], "  spaced  "),
    ],
)
def test_system_text(system: Any, expected: str) -> None:
    generation = shape([user("hi")], system=system)
    assert generation.turns[0] == Turn("system", expected)
    assert generation.turns[1] == Turn("user", "hi")


@pytest.mark.parametrize("system", ["", [], [text("x-anthropic-billing-header: cch=1;")]])
def test_no_system_turn_when_nothing_remains(system: Any) -> None:
    assert roles(shape([user("hi")], system=system)) == ["user"]


def test_billing_header_nonce_does_not_change_the_rendering() -> None:
    first = shape([user("hi")], system=[text("x-anthropic-billing-header: cch=111;"), text("S")])
    second = shape([user("hi")], system=[text("x-anthropic-billing-header: cch=222;"), text("S")])
    assert first.turns == second.turns


def test_inline_billing_header_system_message_is_stripped() -> None:
    generation = shape([user("a"), {"role": "system", "content": "x-anthropic-billing-header: cch=9;"}, user("b")])
    assert list(generation.turns) == [Turn("user", "a\nb")]
    kept = shape([user("a"), {"role": "system", "content": [text("x-anthropic-billing-header: cch=9;"), text("keep")]}])
    assert list(kept.turns) == [Turn("user", "[System note: keep]\na")]


def test_empty_system_block_rejected() -> None:
    assert shape_error([user("hi")], system=[text("")]) == "system: text content blocks must be non-empty"


# --- roles, merging, inline system --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([user("a"), user("b")], [Turn("user", "a\nb")]),
        ([user([text("a"), text("b")])], [Turn("user", "a\nb")]),
        (
            [user("a"), assistant("x"), assistant("y"), user("b")],
            [Turn("user", "a"), Turn("assistant", "x\ny"), Turn("user", "b")],
        ),
        ([{"role": "ctx", "content": "c"}, user("a")], [Turn("user", "c\na")]),
        ([{"role": "msg", "content": "m"}], [Turn("user", "m")]),
        ([user("a"), {"role": "msg", "content": "m"}, assistant("x")], [Turn("user", "a\nm"), Turn("assistant", "x")]),
        # Inline system text is a note at the head of the next user turn, never a system turn mid-conversation.
        (
            [user("a"), {"role": "system", "content": "note"}, user("b")],
            [Turn("user", "a\n[System note: note]\nb")],
        ),
        (
            [
                user("a"),
                assistant("x"),
                {"role": "system", "content": "s1"},
                {"role": "system", "content": "s2"},
                user("b"),
            ],
            [Turn("user", "a"), Turn("assistant", "x"), Turn("user", "[System note: s1]\n[System note: s2]\nb")],
        ),
        # With no user turn after it, the note rides on the user turn before it, ahead of its words: the
        # user's words stay the last thing the model reads (Claude Code's agent list after "Say hello").
        (
            [user("a"), {"role": "system", "content": "agents"}],
            [Turn("user", "[System note: agents]\na")],
        ),
        (
            [user("a"), {"role": "system", "content": "agents"}, assistant("x"), user("b")],
            [Turn("user", "[System note: agents]\na"), Turn("assistant", "x"), Turn("user", "b")],
        ),
        # Next to no user turn at all: a user turn of its own, where it was sent.
        (
            [user("a"), assistant("x"), {"role": "system", "content": "s"}],
            [Turn("user", "a"), Turn("assistant", "x"), Turn("user", "[System note: s]")],
        ),
        (
            [user("a"), assistant("x"), {"role": "system", "content": "s", "name": "Narrator"}, assistant("y")],
            [
                Turn("user", "a"),
                Turn("assistant", "x"),
                Turn("user", "[System note (Narrator): s]"),
                Turn("assistant", "y"),
            ],
        ),
        # An assistant-first conversation is accepted.
        ([assistant("hello"), user("hi")], [Turn("assistant", "hello"), Turn("user", "hi")]),
        ([user(" ")], [Turn("user", " ")]),
    ],
)
def test_turns(messages: list[dict], expected: list[Turn]) -> None:
    assert list(shape(messages).turns) == expected


def test_inline_system_is_not_hoisted_into_the_leading_system() -> None:
    generation = shape([user("a"), assistant("x"), {"role": "system", "content": "later"}, user("b")], system="first")
    assert list(generation.turns) == [
        Turn("system", "first"),
        Turn("user", "a"),
        Turn("assistant", "x"),
        Turn("user", "[System note: later]\nb"),
    ]


# --- emptiness ----------------------------------------------------------------------------------------------------

NON_EMPTY = "all messages must have non-empty content except for the optional final assistant message"


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "messages: at least one message is required"),
        ([user("")], f"messages.0: {NON_EMPTY}"),
        ([user([])], f"messages.0: {NON_EMPTY}"),
        ([user("a"), assistant(""), user("b")], f"messages.1: {NON_EMPTY}"),
        ([user("a"), assistant([]), user("b")], f"messages.1: {NON_EMPTY}"),
        ([user("a"), assistant("x"), user("")], f"messages.2: {NON_EMPTY}"),
        ([user("a"), user(""), assistant("x")], f"messages.1: {NON_EMPTY}"),
        ([user([text("")])], "messages: text content blocks must be non-empty"),
        ([user("a"), assistant([text("x"), text("")])], "messages: text content blocks must be non-empty"),
    ],
)
def test_empty_content_rejected(messages: list[dict], message: str) -> None:
    assert shape_error(messages) == message


@pytest.mark.parametrize("final", ["", []])
def test_empty_final_assistant_means_no_prefill(final: Any) -> None:
    generation = shape([user("a"), assistant(final)])
    assert list(generation.turns) == [Turn("user", "a")]
    assert generation.prefill is False


@pytest.mark.parametrize(
    ("messages", "prefill"),
    [
        ([user("a")], False),
        ([user("a"), assistant("The answer is (")], True),
        ([user("a"), assistant("x"), user("b")], False),
        ([user("a"), assistant([text("The answer"), text(" is (")])], True),
    ],
)
def test_prefill(messages: list[dict], prefill: bool) -> None:
    generation = shape(messages)
    assert generation.prefill is prefill
    if prefill:
        assert generation.turns[-1].role == "assistant" and generation.turns[-1].text.startswith("The answer")


# --- tools in history ---------------------------------------------------------------------------------------------


def test_tool_use_becomes_a_tool_call_in_the_clients_key_order() -> None:
    arguments = {"zeta": 1, "alpha": {"y": [1, "é"], "b": None}, "mid": "Paris"}
    generation = shape(
        [
            user("weather?"),
            assistant(
                [text("Checking."), {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": arguments}]
            ),
            user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]),
        ],
        tools=[WEATHER],
    )
    call_turn = generation.turns[1]
    assert call_turn.role == "assistant" and call_turn.text == "Checking."
    (call,) = call_turn.tool_calls
    assert (call.id, call.name) == ("toolu_1", "get_weather")
    assert json.loads(call.arguments) == arguments
    assert list(json.loads(call.arguments)) == ["zeta", "alpha", "mid"]
    assert list(json.loads(call.arguments)["alpha"]) == ["y", "b"]
    assert "é" in call.arguments  # not \u-escaped: same bytes as the engine produced


def test_tool_result_turn_comes_before_the_users_text() -> None:
    generation = shape(
        [
            user("weather?"),
            assistant(
                [
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "get_time", "input": {}},
                ]
            ),
            user(
                [
                    text("thanks"),
                    {"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "t2", "content": [text("noon"), text("UTC")]},
                ]
            ),
        ],
        tools=[WEATHER, TIME],
    )
    assert list(generation.turns) == [
        Turn("user", "weather?"),
        Turn("assistant", "", None, (ToolCall("t1", "get_weather", "{}"), ToolCall("t2", "get_time", "{}"))),
        Turn("tool", "18C", tool_call_id="t1"),
        Turn("tool", "noon\nUTC", tool_call_id="t2"),
        Turn("user", "thanks"),
    ]


def test_tool_result_error_flag_is_rendered() -> None:
    generation = shape(
        [
            user("go"),
            assistant([{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]),
            user([{"type": "tool_result", "tool_use_id": "t1", "content": "no network", "is_error": True}]),
        ]
    )
    assert generation.turns[-1] == Turn("tool", "Error: no network", tool_call_id="t1")


def test_thinking_in_history_is_the_turns_reasoning() -> None:
    generation = shape(
        [
            user("a"),
            assistant(
                [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    text("x"),
                    {"type": "redacted_thinking", "data": "opaque"},
                ]
            ),
            user("b"),
        ]
    )
    assert generation.turns[1] == Turn("assistant", "x", "hmm")


# --- blocks not allowed, media ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "prefix"),
    [
        ([user([PNG])], "messages.0.content.0: image input is not supported by model m"),
        ([user([text("look"), PNG])], "messages.0.content.1: image input is not supported by model m"),
        (
            [user("a"), assistant("b"), user([text("c"), text("d"), PNG])],
            "messages.2.content.2: image input is not supported by model m",
        ),
        (
            [
                user(
                    [
                        {
                            "type": "document",
                            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                        }
                    ]
                )
            ],
            "messages.0.content.0: document input is not supported by model m",
        ),
        (
            [user([{"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}])],
            "messages.0.content.0: document input is not supported by model m",
        ),
        (
            [
                user("a"),
                assistant([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
                user([{"type": "tool_result", "tool_use_id": "t", "content": [PNG]}]),
            ],
            "messages.2.content.0: image input is not supported by model m",
        ),
        ([user([{"type": "thinking", "thinking": "x", "signature": ""}])], "messages.0.content.0"),
        ([user("a"), assistant("b"), user([text("c"), {"type": "thinking", "thinking": "x"}])], "messages.2.content.1"),
        ([user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])], "messages.0.content.0"),
        ([user("a"), assistant([{"type": "tool_result", "tool_use_id": "t", "content": "x"}])], "messages.1.content.0"),
        ([user("a"), assistant([PNG])], "messages.1.content.0"),
        ([{"role": "user_system", "content": [PNG]}, user("a")], "messages.0.content.0"),
        ([user("a"), {"role": "system", "content": [PNG]}], "messages.1.content.0"),
    ],
)
def test_block_errors(messages: list[dict], prefix: str) -> None:
    assert shape_error(messages).startswith(prefix)


def test_document_with_text_source_is_inlined() -> None:
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Body of the doc."},
        "title": "Report",
        "context": "Q3",
    }
    generation = shape([user([doc, text("Summarise it.")])])
    assert generation.turns[-1] == Turn("user", "Report\nQ3\nBody of the doc.\nSummarise it.")


def test_document_with_content_source_and_search_result_are_inlined() -> None:
    doc = {"type": "document", "source": {"type": "content", "content": [text("part one"), text("part two")]}}
    result = {"type": "search_result", "source": "https://example.com", "title": "Ex", "content": [text("found")]}
    (turn,) = shape([user([doc, result])]).turns
    assert "part one\npart two" in turn.text and "Ex (https://example.com)\nfound" in turn.text


def test_history_only_blocks_are_dropped() -> None:
    generation = shape(
        [
            user("a"),
            assistant(
                [
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                    {"type": "web_search_tool_result", "tool_use_id": "s", "content": []},
                    text("x"),
                ]
            ),
            user("b"),
        ]
    )
    assert generation.turns[1] == Turn("assistant", "x")


# --- role-play roles ----------------------------------------------------------------------------------------------


def test_leading_role_play_messages_become_sections_of_the_system_turn() -> None:
    generation = shape(
        [
            {"role": "user_system", "content": "Mia, a sailor"},
            {"role": "group", "content": "The harbour tavern"},
            {"role": "sample_message_user", "content": "Ahoy!"},
            {"role": "sample_message_ai", "content": "Welcome aboard."},
            user("Hello"),
        ],
        system="You are Captain Reed.",
    )
    assert roles(generation) == ["system", "user"]
    system = generation.turns[0].text
    assert system.startswith("You are Captain Reed.\n\n")
    for part in ("Mia, a sailor", "The harbour tavern", "Ahoy!", "Welcome aboard."):
        assert part in system
    assert system.index("Mia") < system.index("tavern") < system.index("Ahoy") < system.index("Welcome")
    assert generation.turns[1] == Turn("user", "Hello")


def test_role_play_only_setup_without_system_prompt() -> None:
    generation = shape([{"role": "group", "content": "Scene one"}, user("Hi")])
    assert roles(generation) == ["system", "user"] and "Scene one" in generation.turns[0].text


def test_later_role_play_message_is_a_bracketed_note_on_the_next_user_turn() -> None:
    generation = shape(
        [
            user("Hi"),
            assistant("Hello."),
            {"role": "group", "content": "Night falls"},
            {"role": "user_system", "content": "Mia is tired"},
            user("Let's rest."),
        ],
        system="S",
    )
    assert roles(generation) == ["system", "user", "assistant", "user"]
    assert generation.turns[0] == Turn("system", "S")
    last = generation.turns[-1].text
    assert last.endswith("Let's rest.")
    notes = last.removesuffix("Let's rest.").strip().split("\n")
    assert len(notes) == 2 and all(n.startswith("[") and n.endswith("]") for n in notes)
    assert "Night falls" in notes[0] and "Mia is tired" in notes[1]


@pytest.mark.parametrize("role", ["user_system", "group", "sample_message_user", "sample_message_ai"])
def test_role_play_never_produces_its_own_role(role: str) -> None:
    generation = shape(
        [{"role": role, "content": "x"}, user("a"), assistant("b"), {"role": role, "content": "y"}, user("c")]
    )
    assert set(roles(generation)) <= {"system", "user", "assistant"}
    assert roles(generation) == ["system", "user", "assistant", "user"]


def test_role_play_name_is_used_for_examples() -> None:
    generation = shape([{"role": "sample_message_ai", "content": "Arr.", "name": "Reed"}, user("Hi")])
    assert "Reed: Arr." in generation.turns[0].text


CONVERSATION = [
    {"role": "user_system", "content": "Mia"},
    {"role": "group", "content": "Tavern"},
    user("Hi"),
    assistant("Hello, Mia."),
    {"role": "group", "content": "Storm outside"},
    user("Let's stay in."),
    assistant([text("Good idea."), {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"b": 1, "a": 2}}]),
    user([{"type": "tool_result", "tool_use_id": "t1", "content": "stormy"}, text("And now?")]),
    {"role": "system", "content": "Be concise."},
    user("Well?"),
    assistant("We wait."),
    {"role": "sample_message_ai", "content": "Aye."},
    user("Fine."),
]


def _answered(messages: list[dict]) -> bool:
    """False when the last message holds a tool_use still waiting for its result (a 400, §5.4)."""
    content = messages[-1]["content"]
    return not (isinstance(content, list) and any(block.get("type") == "tool_use" for block in content))


# A request that ends in a note (a system message after the last user message) is answered with the note
# kept on that user turn; the conversation goes on from there (test_a_trailing_note_keeps_its_place), so such
# a prefix is not a point a later request grows from.
VALID_PREFIXES = [
    k
    for k in range(3, len(CONVERSATION) + 1)
    if _answered(CONVERSATION[:k]) and CONVERSATION[k - 1]["role"] != "system"
]


@pytest.mark.parametrize(("k", "longer"), list(itertools.pairwise(VALID_PREFIXES)))
def test_append_only(k: int, longer: int) -> None:
    """Adding messages never changes how earlier turns render: the prefix cache keeps working."""
    before = shape(CONVERSATION[:k], system="S", tools=[WEATHER]).turns
    after = shape(CONVERSATION[:longer], system="S", tools=[WEATHER]).turns
    assert before[:-1] == after[: len(before) - 1]
    last, same = before[-1], after[len(before) - 1]
    assert last == same or (
        last.role == same.role
        and same.text.startswith(last.text)
        and last.tool_calls == same.tool_calls[: len(last.tool_calls)]
    )


def test_a_trailing_note_keeps_its_place_when_the_conversation_goes_on() -> None:
    """Claude Code sends its agent list as a system message after the user's words; the answer and the
    next user turn are appended after it, and the turns already rendered stay as they were."""
    opening = [user("Say hello"), {"role": "system", "content": "agents"}]
    first = shape(opening, system="S").turns
    later = shape([*opening, assistant("Hello!"), user("Again")], system="S").turns
    assert first[-1] == Turn("user", "[System note: agents]\nSay hello")
    assert later[: len(first)] == first


def test_a_final_unanswered_tool_use_is_refused() -> None:
    prefix = next(k for k in range(1, len(CONVERSATION) + 1) if not _answered(CONVERSATION[:k]))
    with pytest.raises(InvalidRequest, match=r"`tool_use` ids were found without `tool_result` blocks"):
        shape(CONVERSATION[:prefix], system="S", tools=[WEATHER])


# --- tools and tool_choice ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "choice", "names", "mode", "parallel"),
    [
        ([WEATHER, TIME], None, ["get_weather", "get_time"], "auto", True),
        ([WEATHER, TIME], {"type": "auto"}, ["get_weather", "get_time"], "auto", True),
        (
            [WEATHER, TIME],
            {"type": "auto", "disable_parallel_tool_use": True},
            ["get_weather", "get_time"],
            "auto",
            False,
        ),
        ([WEATHER, TIME], {"type": "any"}, ["get_weather", "get_time"], "required", True),
        (
            [WEATHER, TIME],
            {"type": "any", "disable_parallel_tool_use": True},
            ["get_weather", "get_time"],
            "required",
            False,
        ),
        ([WEATHER, TIME], {"type": "tool", "name": "get_time"}, ["get_time"], "required", True),
        ([WEATHER, TIME], {"type": "none"}, ["get_weather", "get_time"], "none", True),
        ([], None, [], "none", True),
        (
            [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}, WEATHER],
            None,
            ["get_weather"],
            "auto",
            True,
        ),
        (
            [
                {"type": "bash_20250124", "name": "bash"},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
                {**TIME, "type": "custom"},
            ],
            {"type": "any"},
            ["get_time"],
            "required",
            True,
        ),
    ],
)
def test_tool_choice(tools: list, choice: dict | None, names: list[str], mode: str, parallel: bool) -> None:
    fields: dict[str, Any] = {"tools": tools}
    if choice is not None:
        fields["tool_choice"] = choice
    generation = shape([user("hi")], **fields)
    assert [tool.name for tool in generation.tools] == names
    assert generation.tool_mode == mode
    assert generation.parallel_tool_calls is parallel


def test_tool_spec_carries_schema_and_description() -> None:
    (spec,) = shape([user("hi")], tools=[WEATHER]).tools
    assert spec.description == "Weather" and spec.parameters == WEATHER["input_schema"]


@pytest.mark.parametrize(
    ("tools", "choice", "prefix"),
    [
        ([WEATHER], {"type": "tool", "name": "nope"}, "tool_choice.name: tool 'nope' is not defined in tools"),
        (
            [{"type": "web_search_20250305", "name": "web_search"}],
            {"type": "tool", "name": "web_search"},
            "tool_choice",
        ),
        (None, {"type": "any"}, "tool_choice"),
        ([], {"type": "any"}, "tool_choice"),
        (None, {"type": "tool", "name": "get_weather"}, "tool_choice"),
        ([{"type": "web_search_20250305", "name": "web_search"}], {"type": "any"}, "tool_choice"),
    ],
)
def test_tool_choice_errors(tools: list | None, choice: dict, prefix: str) -> None:
    fields: dict[str, Any] = {"tool_choice": choice}
    if tools is not None:
        fields["tools"] = tools
    assert shape_error([user("hi")], **fields).startswith(prefix)


# --- thinking, sampling, stops ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thinking", "mode"),
    [
        (None, "default"),
        ({"type": "enabled", "budget_tokens": 2048}, "enabled"),
        ({"type": "disabled"}, "disabled"),
        ({"type": "adaptive"}, "default"),
    ],
)
def test_thinking_mode(thinking: dict | None, mode: str) -> None:
    fields = {"max_tokens": 4096} | ({"thinking": thinking} if thinking else {})
    assert shape([user("hi")], **fields).thinking == mode


def test_sampling_and_stops_pass_through() -> None:
    generation = shape([user("hi")], temperature=0, top_p=0.5, top_k=1, stop_sequences=["END", "\n\n"], max_tokens=99)
    assert (generation.sampling.temperature, generation.sampling.top_p, generation.sampling.top_k) == (0, 0.5, 1)
    assert generation.stop_sequences == ("END", "\n\n")
    assert generation.max_tokens == 99


def test_count_tokens_request_shapes_the_same_turns() -> None:
    messages = [user("a"), assistant("b"), user("c")]
    counted = to_generation(
        parse_body(CountTokensRequest, json.dumps({"model": "m", "messages": messages, "system": "S"}).encode()),
        EngineTraits(model_name="m"),
    )
    assert counted.turns == shape(messages, system="S").turns


def test_mid_conversation_system_block_is_a_note_on_its_own_turn() -> None:
    generation = shape(
        [
            user("a"),
            assistant("b"),
            user(
                [
                    text("c"),
                    {
                        "type": "mid_conv_system",
                        "content": [{"type": "text", "text": "Skills: none."}],
                        "cache_control": {"type": "ephemeral"},
                    },
                ]
            ),
        ],
        system="S",
    )
    assert generation.turns[1:] == (
        Turn("user", "a"),
        Turn("assistant", "b"),
        Turn("user", "[System note: Skills: none.]\nc"),
    )


def test_images_go_to_vision_engines_as_urls() -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    generation = shape([user([text("What is this?"), PNG, url_image])], vision=True)
    assert generation.turns[-1] == Turn(
        "user", "What is this?", images=("data:image/png;base64,iVBORw0KGgo=", "https://example.com/cat.png")
    )
    assert chat_messages(generation.turns)[-1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"type": "base64", "media_type": "image/tiff", "data": "x"}, "source.media_type"),
        ({"type": "base64", "media_type": "image/png", "data": ""}, "source.data"),
        ({"type": "url", "url": "file:///etc/passwd"}, "source"),
        ({"type": "file", "file_id": "f"}, "source"),
    ],
)
def test_bad_image_sources_are_400_for_vision_engines(source: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        shape([user([{"type": "image", "source": source}])], vision=True)
    assert caught.value.message.startswith(f"messages.0.content.0.{field}:")


def test_top_k_zero_is_no_limit() -> None:
    """Anthropic's `top_k: 0` (SillyTavern always sends it) means no top-k limit: the engine gets none."""
    assert shape([user("hi")], top_k=0).sampling.top_k is None
    assert shape([user("hi")], top_k=40).sampling.top_k == 40
