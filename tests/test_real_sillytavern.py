"""SillyTavern's Claude source against the default configuration (the bundled model, no config file):
it offers only `claude-*` model names and always sends `top_k: 0`, Anthropic's "no top-k limit"."""

from __future__ import annotations

import anthropic
import httpx

from tests.real_checks import SUCCESS, post_stream, stream_text

# The shape of SillyTavern's Claude request (spec roleplay-clients.md §2.4): system as text blocks, example
# lines prefixed with names, the custom stops, and every sampling field, top_k 0 included.
SILLYTAVERN = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 16,
    "temperature": 1,
    "top_p": 1,
    "top_k": 0,
    "stop_sequences": ["\nTomas:"],
    "system": [{"type": "text", "text": "You are Mira, the keeper of the Salt Lantern tavern. Speak briefly."}],
    "messages": [
        {"role": "user", "content": "Tomas: Evening, Mira. Any stew left?"},
        {"role": "assistant", "content": "Mira: For paying customers. Sit."},
        {"role": "user", "content": "Tomas: Can I hide here tonight?"},
    ],
}


def test_claude_source_request_is_answered_by_the_default_model(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/messages", json=SILLYTAVERN)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["model"] == SILLYTAVERN["model"], "the name the client asked for is echoed"
    assert message["base_resp"] == SUCCESS and message["content"]
    assert message["usage"]["output_tokens"] >= 1
    _, events = post_stream(real_http, SILLYTAVERN, path="/anthropic/v1/messages")
    assert events[0]["message"]["model"] == SILLYTAVERN["model"] and stream_text(events)


def test_every_claude_name_routes_and_top_k_zero_is_no_limit(real_client: anthropic.Anthropic) -> None:
    for name in ("claude-3-5-sonnet-20241022", "claude-opus-4-6", "claude-haiku-4-5-20251001"):
        message = real_client.messages.create(
            model=name, max_tokens=4, messages=[{"role": "user", "content": "Hi"}], extra_body={"top_k": 0}
        )
        assert message.model == name and message.stop_reason in ("end_turn", "max_tokens")
    listed = [model.id for model in real_client.models.list()]
    assert not any(name.startswith("claude") for name in listed), "a glob alias routes but is not listed"
