"""Golden tests across the doors: one scene is one prompt, token for token, whether it comes through
`/v1/messages`, `/v1/chat/completions` or `/v1/text/chatcompletion_v2` (the last two share their shaping).
The chat turns are pinned (docs/role-play.md shows them); the Anthropic form of each scene must render
to the very same turns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.engines.openai_wire import chat_messages
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.protocol.openai.validation import parse_request
from rolecall.shaping import openai as openai_shaping
from rolecall.shaping.anthropic import to_generation as anthropic_shaping
from rolecall.shaping.traits import EngineTraits
from tests.unit.test_role_play_rendering import (
    MID_SCENE,
    MID_SCENE_RENDERED,
    OPENING_SCENE,
    OPENING_SCENE_RENDERED,
    SALT_LANTERN,
    SALT_LANTERN_RENDERED,
    WITTY,
    WITTY_RENDERED,
    ZHUGE_LIANG,
    ZHUGE_LIANG_RENDERED,
)

TRAITS = EngineTraits(model_name="MiniMax-M2.7", prompted_tools="forced")

# A SillyTavern "Custom (OpenAI-compatible)" request (roleplay-clients.md §2): the prompt manager's blocks
# as system messages, example dialogue as system messages named example_user / example_assistant, the
# card's greeting, the chat, a late group nudge, and the names as stop strings.
SILLYTAVERN = {
    "messages": [
        {"role": "system", "content": "Write Mira's next reply in a fictional chat between Mira and Tomas."},
        {"role": "system", "content": "Mira keeps the Salt Lantern tavern in a fishing town."},
        {"role": "system", "content": "[Mira's personality: gruff but kind; short sentences]"},
        {"role": "system", "content": "[Circumstances and context of the dialogue: a stormy night]"},
        {"role": "system", "content": "[Example Chat]"},
        {"role": "system", "name": "example_user", "content": "Evening, Mira. Any stew left?"},
        {"role": "system", "name": "example_assistant", "content": "For paying customers. Sit."},
        {"role": "system", "content": "[Start a new Chat]"},
        {"role": "assistant", "content": "*Mira looks up from the bar.* Door. Shut it."},
        {"role": "user", "content": "Mira, the harbour master is looking for me. Can I hide here?"},
        {"role": "system", "content": "[Write the next reply only as Mira.]"},
    ],
    "stop": ["\nTomas:", "\nMira:"],
    "temperature": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "top_p": 1,
    "max_tokens": 300,
    "stream": False,
    "n": 1,
    "logit_bias": {},
    "user_name": "Tomas",
    "char_name": "Mira",
}
# The same scene on /v1/messages: the leading system run is the top-level `system`, the examples are
# MiniMax's sample roles, the nudge an inline system message (a note on the last user turn).
SILLYTAVERN_ANTHROPIC = {
    "system": [{"type": "text", "text": m["content"]} for m in SILLYTAVERN["messages"][:8] if "name" not in m],
    "messages": [
        {"role": "sample_message_user", "content": "Evening, Mira. Any stew left?"},
        {"role": "sample_message_ai", "content": "For paying customers. Sit."},
        *SILLYTAVERN["messages"][8:],
    ],
}
SILLYTAVERN_RENDERED = [
    {
        "role": "system",
        "content": "Write Mira's next reply in a fictional chat between Mira and Tomas.\n"
        "Mira keeps the Salt Lantern tavern in a fishing town.\n"
        "[Mira's personality: gruff but kind; short sentences]\n"
        "[Circumstances and context of the dialogue: a stormy night]\n"
        "[Example Chat]\n"
        "[Start a new Chat]\n\n"
        "Example exchanges (they show the style only; they are not part of this conversation):\n"
        "User: Evening, Mira. Any stew left?\n"
        "You: For paying customers. Sit.",
    },
    {"role": "assistant", "content": "*Mira looks up from the bar.* Door. Shut it."},
    {
        "role": "user",
        "content": "[System note: [Write the next reply only as Mira.]]\n"
        "Mira, the harbour master is looking for me. Can I hide here?",
    },
]

# role-play.md §4.3: the OpenAI-side form with names (MiniMax's guide).
NAMED = {
    "messages": [
        {"role": "system", "name": "AI助手", "content": "你是一个幽默风趣的聊天伙伴"},
        {"role": "user", "name": "用户", "content": "明天准备去爬山"},
    ]
}
NAMED_RENDERED = [
    {"role": "system", "content": "Your character (AI助手): 你是一个幽默风趣的聊天伙伴"},
    {"role": "user", "content": "用户: 明天准备去爬山"},
]

# A group scene: two AI characters and the user, each named; the reply is the AI character's.
GROUP = {
    "messages": [
        {"role": "system", "name": "Mira", "content": "You keep the Salt Lantern tavern."},
        {"role": "group", "content": "The Salt Lantern, a stormy night"},
        {"role": "user", "name": "Tomas", "content": "Evening, both of you."},
        {"role": "assistant", "name": "Old Sven", "content": "Hmph."},
        {"role": "assistant", "name": "Mira", "content": "Sit."},
        {"role": "user", "name": "Tomas", "content": "诸葛亮 sends his regards."},
    ]
}
GROUP_RENDERED = [
    {
        "role": "system",
        "content": "Your character (Mira): You keep the Salt Lantern tavern.\n\nScene: The Salt Lantern, a stormy night",
    },
    {"role": "user", "content": "Tomas: Evening, both of you."},
    {"role": "assistant", "content": "Old Sven: Hmph.\nMira: Sit."},
    {"role": "user", "content": "Tomas: 诸葛亮 sends his regards."},
]


def as_openai(anthropic_form: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions form of an Anthropic-form scene: `system` becomes the leading system message."""
    system = anthropic_form.get("system")
    leading = [{"role": "system", "content": system}] if isinstance(system, str) else []
    return {"messages": leading + anthropic_form["messages"]}


def via_openai(request: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps({"model": "MiniMax-M2.7", **request}).encode()
    return chat_messages(openai_shaping.to_generation(parse_request(body), TRAITS).turns)


def via_anthropic(request: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps({"model": "MiniMax-M2.7", "max_tokens": 64, **request}).encode()
    return chat_messages(anthropic_shaping(parse_body(MessagesRequest, body), TRAITS).turns)


@pytest.mark.parametrize(
    ("scene", "expected"),
    [
        (ZHUGE_LIANG, ZHUGE_LIANG_RENDERED),
        (SALT_LANTERN, SALT_LANTERN_RENDERED),
        (WITTY, WITTY_RENDERED),
        (MID_SCENE, MID_SCENE_RENDERED),
        (OPENING_SCENE, OPENING_SCENE_RENDERED),
    ],
    ids=["zhuge-liang", "salt-lantern", "named-examples", "mid-scene", "opening-scene"],
)
def test_role_play_guide_scenes_render_alike_through_every_door(
    scene: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    assert via_anthropic(scene) == expected
    assert via_openai(as_openai(scene)) == expected


def test_sillytavern_request_renders_pinned_and_as_its_anthropic_form() -> None:
    assert via_openai(SILLYTAVERN) == SILLYTAVERN_RENDERED
    assert via_anthropic(SILLYTAVERN_ANTHROPIC) == SILLYTAVERN_RENDERED


@pytest.mark.parametrize(
    ("scene", "expected"), [(NAMED, NAMED_RENDERED), (GROUP, GROUP_RENDERED)], ids=["named-guide", "group"]
)
def test_names_are_speaker_labels(scene: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert via_openai(scene) == expected


def test_named_system_message_names_the_ai_character() -> None:
    assert openai_shaping.ai_character(parse_request(json.dumps({"model": "m", **GROUP}).encode())) == "Mira"
    assert openai_shaping.ai_character(parse_request(json.dumps({"model": "m", **SILLYTAVERN}).encode())) is None
    bare = {"model": "m", "messages": [{"role": "system", "name": "MiniMax AI"}, {"role": "user", "content": "hi"}]}
    assert via_openai(bare) == [
        {"role": "system", "content": "Your character: MiniMax AI"},
        {"role": "user", "content": "hi"},
    ]


def test_tool_round_trip_renders_alike_through_every_door() -> None:
    openai_form = {
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Call the tool.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    }
    anthropic_form = {
        "system": "You help.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": ""},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris", "unit": "c"},
                    },
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"}]},
        ],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    rendered = via_openai(openai_form)
    assert rendered == via_anthropic(anthropic_form)
    assert rendered[2]["reasoning_content"] == "Call the tool."
    assert '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}' in rendered[2]["content"]
    assert rendered[3] == {"role": "user", "content": "<tool_response>\n18 C\n</tool_response>"}


@pytest.mark.parametrize(
    "assistant",
    [
        {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello!"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "The user greets."},
        {
            "role": "assistant",
            "content": "Hello!",
            "reasoning_details": [{"type": "reasoning.text", "id": "reasoning-text-1", "text": "The user greets."}],
        },
    ],
    ids=["think-tags", "reasoning_content", "reasoning_details"],
)
def test_history_reasoning_in_any_form_is_the_turns_reasoning(assistant: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "Hi"}, assistant, {"role": "user", "content": "Bye"}]
    rendered = via_openai({"messages": messages})
    assert rendered[1] == {
        "role": "assistant",
        "content": "Hello!",
        "reasoning_content": "The user greets.",
        "reasoning": "The user greets.",
    }
    thinking = {"type": "thinking", "thinking": "The user greets.", "signature": ""}
    anthropic_form = [messages[0], {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello!"}]}]
    assert rendered == via_anthropic({"messages": [*anthropic_form, messages[2]]})


def test_rendering_is_append_only() -> None:
    """Adding turns never changes how the earlier ones render (the engine's prefix cache holds)."""
    messages = SILLYTAVERN["messages"][:-1]
    before = via_openai({"messages": messages})
    later = [
        *messages,
        {"role": "assistant", "name": "Mira", "content": "Upstairs. Quick."},
        {"role": "group", "content": "Footsteps on the stairs"},
        {"role": "user", "name": "Tomas", "content": "Thank you!"},
    ]
    assert via_openai({"messages": later})[: len(before)] == before


def test_documented_renderings_match_the_code() -> None:
    """docs/role-play.md shows the names, group and SillyTavern renderings verbatim; keep them honest."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "role-play.md").read_text()
    sillytavern = {"messages": SILLYTAVERN["messages"], "stop": SILLYTAVERN["stop"]}
    for shown, scene in ((NAMED["messages"], NAMED), (GROUP["messages"], GROUP), (sillytavern, SILLYTAVERN)):
        assert json.dumps(shown, ensure_ascii=False, indent=2) in docs
        assert json.dumps(via_openai(scene), ensure_ascii=False, indent=2) in docs


def test_named_speakers_render_alike_through_every_door() -> None:
    """Names on user and assistant messages, with role-play notes mid-scene, in both forms."""
    messages = [
        {"role": "user", "name": "Tomas", "content": "Evening, both of you."},
        {"role": "assistant", "name": "Old Sven", "content": "Hmph."},
        {"role": "assistant", "name": "Mira", "content": "Sit."},
        {"role": "group", "content": "Midnight"},
        {"role": "user", "name": "Tomas", "content": "诸葛亮 sends his regards."},
    ]
    rendered = via_openai({"messages": [{"role": "system", "content": "A tavern."}, *messages]})
    assert rendered == via_anthropic({"system": "A tavern.", "messages": messages})
    assert rendered[2] == {"role": "assistant", "content": "Old Sven: Hmph.\nMira: Sit."}
    assert rendered[3] == {"role": "user", "content": "[Scene: Midnight]\nTomas: 诸葛亮 sends his regards."}
