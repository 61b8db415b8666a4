"""Golden tests: the exact chat turns rolecall renders for role-play requests (docs/role-play.md, README).

These pin bytes on purpose: a change here changes what every role-play user's model sees, and must
be made together with the documentation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.engines.openai_wire import chat_messages
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.shaping.anthropic import to_generation
from rolecall.shaping.traits import EngineTraits

ZHUGE_LIANG = {  # role-play.md §4.1
    "system": "你是《三国演义》中的诸葛亮…",
    "messages": [
        {"role": "user_system", "content": "你是一位来自现代的穿越者"},
        {"role": "group", "content": "三国时期的隆中对话"},
        {"role": "user", "content": "军师，我有一些现代的想法想和您探讨"},
    ],
}
ZHUGE_LIANG_RENDERED = [
    {
        "role": "system",
        "content": "你是《三国演义》中的诸葛亮…\n\n"
        "The user's character: 你是一位来自现代的穿越者\n\n"
        "Scene: 三国时期的隆中对话",
    },
    {"role": "user", "content": "军师，我有一些现代的想法想和您探讨"},
]

SALT_LANTERN = {  # role-play.md §4.4
    "system": "You are Mira, the gruff but kind keeper of the Salt Lantern tavern in a fishing town. "
    "Speak in short sentences.",
    "messages": [
        {"role": "user_system", "content": "The user is Tomas, a young sailor who owes Mira two silver coins."},
        {"role": "group", "content": "The Salt Lantern, a stormy night"},
        {"role": "sample_message_user", "content": "Evening, Mira. Any stew left?"},
        {"role": "sample_message_ai", "content": "For paying customers. Sit. Boots off the bench."},
        {"role": "sample_message_user", "content": "I'll pay you back next week, I swear."},
        {"role": "sample_message_ai", "content": "You said that last week. Eat first. Then we talk."},
        {"role": "user", "content": "Mira, the harbour master is looking for me. Can I hide here?"},
    ],
}
SALT_LANTERN_RENDERED = [
    {
        "role": "system",
        "content": (
            "You are Mira, the gruff but kind keeper of the Salt Lantern tavern in a fishing town. "
            "Speak in short sentences.\n\n"
            "The user's character: The user is Tomas, a young sailor who owes Mira two silver coins.\n\n"
            "Scene: The Salt Lantern, a stormy night\n\n"
            "Example exchanges (they show the style only; they are not part of this conversation):\n"
            "User: Evening, Mira. Any stew left?\n"
            "You: For paying customers. Sit. Boots off the bench.\n"
            "User: I'll pay you back next week, I swear.\n"
            "You: You said that last week. Eat first. Then we talk."
        ),
    },
    {"role": "user", "content": "Mira, the harbour master is looking for me. Can I hide here?"},
]

WITTY = {  # role-play.md §4.2, with names on the examples
    "system": "你是一个幽默风趣的聊天伙伴",
    "messages": [
        {"role": "sample_message_user", "content": "今天天气真好", "name": "小明"},
        {"role": "sample_message_ai", "content": "是啊！阳光明媚的日子…", "name": "AI助手"},
        {"role": "user", "content": "明天准备去爬山", "name": "小明"},
    ],
}
WITTY_RENDERED = [
    {
        "role": "system",
        "content": "你是一个幽默风趣的聊天伙伴\n\n"
        "Example exchanges (they show the style only; they are not part of this conversation):\n"
        "小明: 今天天气真好\n"
        "AI助手: 是啊！阳光明媚的日子…",
    },
    {"role": "user", "content": "小明: 明天准备去爬山"},
]

MID_SCENE = {  # role-play messages after the conversation started: notes on the next user turn
    "system": "You are Mira.",
    "messages": [
        {"role": "user", "content": "Evening."},
        {"role": "assistant", "content": "Sit."},
        {"role": "group", "content": "Midnight; the storm has passed"},
        {"role": "user_system", "content": "Tomas is soaked and shivering", "name": "Tomas"},
        {"role": "sample_message_ai", "content": "Dry off by the fire."},
        {"role": "user", "content": "Can I stay the night?"},
    ],
}
MID_SCENE_RENDERED = [
    {"role": "system", "content": "You are Mira."},
    {"role": "user", "content": "Evening."},
    {"role": "assistant", "content": "Sit."},
    {
        "role": "user",
        "content": "[Scene: Midnight; the storm has passed]\n"
        "[The user's character (Tomas): Tomas is soaked and shivering]\n"
        "[Example (style only, not part of this conversation) You: Dry off by the fire.]\n"
        "Can I stay the night?",
    },
]

OPENING_SCENE = {  # only setup: the character opens the scene
    "system": "You are Mira.",
    "messages": [{"role": "group", "content": "Dawn at the harbour"}],
}
OPENING_SCENE_RENDERED = [{"role": "system", "content": "You are Mira.\n\nScene: Dawn at the harbour"}]


def rendered(request: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps({"model": "MiniMax-M2.7", "max_tokens": 64, **request}).encode()
    generation = to_generation(parse_body(MessagesRequest, body), EngineTraits(model_name="MiniMax-M2.7"))
    return chat_messages(generation.turns)


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (ZHUGE_LIANG, ZHUGE_LIANG_RENDERED),
        (SALT_LANTERN, SALT_LANTERN_RENDERED),
        (WITTY, WITTY_RENDERED),
        (MID_SCENE, MID_SCENE_RENDERED),
        (OPENING_SCENE, OPENING_SCENE_RENDERED),
    ],
    ids=["zhuge-liang", "salt-lantern", "named-examples", "mid-scene", "opening-scene"],
)
def test_rendering_is_pinned(request_body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert rendered(request_body) == expected


def test_rendering_is_deterministic() -> None:
    assert json.dumps(rendered(SALT_LANTERN)) == json.dumps(rendered(SALT_LANTERN))


def test_every_role_play_message_reaches_the_model() -> None:
    text = "\n".join(message["content"] for message in rendered(SALT_LANTERN) + rendered(MID_SCENE))
    for request in (SALT_LANTERN, MID_SCENE):
        for message in request["messages"]:
            assert message["content"] in text


def test_documented_renderings_match_the_code() -> None:
    """docs/role-play.md shows the §4.1 and §4.4 renderings verbatim; keep them honest."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "role-play.md").read_text()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for expected in (ZHUGE_LIANG_RENDERED, SALT_LANTERN_RENDERED):
        shown = json.dumps(expected, ensure_ascii=False, indent=2)
        assert shown in docs
        assert shown in readme
