"""`POST /v1/render` on an engine that does not show its prompt text (the scripted engine): turns only."""

from __future__ import annotations

import httpx


def test_render_without_template_text_gives_turns_and_the_engines_count(scripted_url: str) -> None:
    body = {
        "model": "scripted",
        "max_tokens": 10,
        "system": "You are Mira.",
        "tools": [{"name": "look", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "sample_message_user", "content": "Stew?"},
            {"role": "sample_message_ai", "content": "Sit."},
            {"role": "user", "content": "Evening."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a tavern"}]},
        ],
    }
    rendered = httpx.post(f"{scripted_url}/v1/render", json=body).json()
    counted = httpx.post(f"{scripted_url}/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert rendered["prompt"] is None and rendered["served_by"] == "scripted"
    assert rendered["input_tokens"] == counted
    assert rendered["tools"] == ["look"]
    assert [t["role"] for t in rendered["turns"]] == ["system", "user", "assistant", "tool"]
    assert rendered["turns"][0]["content"].startswith("You are Mira.\n\nExample exchanges")
    assert rendered["turns"][2]["tool_calls"] == [{"id": "toolu_1", "name": "look", "arguments": "{}"}]
    assert rendered["turns"][3] == {"role": "tool", "content": "a tavern", "tool_call_id": "toolu_1"}
