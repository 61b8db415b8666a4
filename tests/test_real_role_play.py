"""Role-play requests with the real bundled model: accepted, counted as rendered, and append-only in practice
(a follow-up turn reuses the engine's prefix cache)."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx

from tests.real_checks import MODEL, count_tokens, post_stream, prompt_total, stream_text
from tests.unit.test_role_play_rendering import SALT_LANTERN, ZHUGE_LIANG


def test_salt_lantern_scene_through_the_sdk(real_client: anthropic.Anthropic, real_http: httpx.Client) -> None:
    message = real_client.messages.create(model=MODEL, max_tokens=24, extra_body={"top_k": 1}, **SALT_LANTERN)
    assert message.role == "assistant" and message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert prompt_total(message.usage.model_dump()) == count_tokens(real_http, {"model": MODEL, **SALT_LANTERN})


def test_every_role_play_message_counts_as_input(real_http: httpx.Client) -> None:
    full = count_tokens(real_http, {"model": MODEL, **SALT_LANTERN})
    without_examples = {
        **SALT_LANTERN,
        "messages": [m for m in SALT_LANTERN["messages"] if not m["role"].startswith("sample_message")],
    }
    assert count_tokens(real_http, {"model": MODEL, **without_examples}) < full


def test_zhuge_liang_follow_up_turn_reuses_the_prefix_cache(
    real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    first_payload = {"model": MODEL, "max_tokens": 16, "top_k": 1, **ZHUGE_LIANG}
    _, events = post_stream(real_http, first_payload)
    reply = stream_text(events)
    assert reply
    settle()
    follow_up = {
        **first_payload,
        "messages": [
            *ZHUGE_LIANG["messages"],
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "请谈谈您对天下大势的看法。"},
        ],
    }
    response = real_http.post("/v1/messages", json=follow_up)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["cache_read_input_tokens"] > 0, usage
    assert prompt_total(usage) == count_tokens(
        real_http, {"model": MODEL, "messages": follow_up["messages"], "system": ZHUGE_LIANG["system"]}
    )


def test_mid_conversation_role_play_and_a_named_speaker(real_http: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "Evening.", "name": "Tomas"},
        {"role": "assistant", "content": "Sit."},
        {"role": "group", "content": "Midnight"},
        {"role": "sample_message_ai", "content": "Dry off."},
    ]
    response = real_http.post(
        "/v1/messages", json={"model": MODEL, "max_tokens": 8, "system": "You are Mira.", "messages": messages}
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["type"] == "text"
