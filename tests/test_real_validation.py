"""Request validation on the real server: one case per rule, each checking the HTTP status, the error
envelope tied to the `request-id` header, and MiniMax's base_resp code."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY
from tests.real_checks import MODEL, SUCCESS, assert_error, body

OK = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in OK.items() if k != key}


def with_content(content: Any) -> dict[str, Any]:
    return {**OK, "messages": [{"role": "user", "content": content}]}


ROLES = (
    "'user', 'assistant', 'user_system', 'group', 'sample_message_user', 'sample_message_ai', 'system', 'ctx' or 'msg'"
)

REJECTED = [
    ("max_tokens-missing", without("max_tokens"), "max_tokens: Field required"),
    ("max_tokens-zero", {**OK, "max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ("max_tokens-too-big", {**OK, "max_tokens": 204801}, "max_tokens: Input should be less than or equal to 204800"),
    ("max_tokens-string", {**OK, "max_tokens": "16"}, "max_tokens: Input should be a valid integer"),
    ("max_tokens-float", {**OK, "max_tokens": 16.0}, "max_tokens: Input should be a valid integer"),
    ("max_tokens-fraction", {**OK, "max_tokens": 16.5}, "max_tokens: Input should be a valid integer"),
    ("max_tokens-bool", {**OK, "max_tokens": True}, "max_tokens: Input should be a valid integer"),
    ("max_tokens-null", {**OK, "max_tokens": None}, "max_tokens: "),
    ("temperature-above-1", {**OK, "temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ("temperature-negative", {**OK, "temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
    ("temperature-string", {**OK, "temperature": "0.5"}, "temperature: "),
    ("top_p-zero", {**OK, "top_p": 0}, "top_p: Input should be greater than 0"),
    ("top_p-above-1", {**OK, "top_p": 1.01}, "top_p: Input should be less than or equal to 1"),
    ("top_k-negative", {**OK, "top_k": -1}, "top_k: Input should be greater than or equal to 0"),
    ("top_k-float", {**OK, "top_k": 2.5}, "top_k: "),
    ("stream-string", {**OK, "stream": "yes"}, "stream: "),
    ("model-missing", without("model"), "model: Field required"),
    ("model-empty", {**OK, "model": ""}, "model: "),
    ("messages-missing", without("messages"), "messages: Field required"),
    ("messages-empty", {**OK, "messages": []}, "messages: at least one message is required"),
    ("messages-not-a-list", {**OK, "messages": "Hi"}, "messages: "),
    ("content-number", with_content(5), "messages.0.content"),
    ("content-object", with_content({"type": "text", "text": "Hi"}), "messages.0.content"),
    ("content-null", with_content(None), "messages.0.content"),
    ("block-type-unknown", with_content([{"type": "hologram", "data": "x"}]), "messages.0.content.0.type: "),
    ("block-type-missing", with_content([{"text": "Hi"}]), "messages.0.content.0.type: Field required"),
    (
        "text-block-empty",
        with_content([{"type": "text", "text": ""}]),
        "messages: text content blocks must be non-empty",
    ),
    (
        "non-final-empty",
        {
            **OK,
            "messages": [
                {"role": "user", "content": ""},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "Hi"},
            ],
        },
        "messages.0: all messages must have non-empty content except for the optional final assistant message",
    ),
    (
        "role-unknown",
        {**OK, "messages": [{"role": "bot", "content": "Hi"}]},
        f"messages.0.role: Input should be {ROLES}",
    ),
    (
        "role-second-unknown",
        {**OK, "messages": [{"role": "user", "content": "Hi"}, {"role": "narrator", "content": "x"}]},
        "messages.1.role: Input should be",
    ),
    ("stop_sequences-empty-string", {**OK, "stop_sequences": [""]}, "stop_sequences.0: "),
    (
        "system-empty-block",
        {**OK, "system": [{"type": "text", "text": ""}]},
        "system: text content blocks must be non-empty",
    ),
    (
        "thinking-budget-too-small",
        {**OK, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 100}},
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
]


@pytest.mark.parametrize("payload, expected", [pytest.param(p, e, id=i) for i, p, e in REJECTED])
def test_rejected_with_400(real_http: httpx.Client, payload: dict[str, Any], expected: str) -> None:
    response = real_http.post("/v1/messages", json=payload)
    error = assert_error(response, 400, "invalid_request_error", 2013, contains=expected)
    assert error["base_resp"]["status_msg"].startswith(expected.split(":")[0])


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/anthropic/v1/messages"])
@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"a string"', "Request body must be a JSON object"),
        (b"null", "Request body must be a JSON object"),
    ],
    ids=["broken", "empty", "array", "string", "null"],
)
def test_body_that_is_not_a_json_object(real_http: httpx.Client, path: str, raw: bytes, expected: str) -> None:
    response = real_http.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_request_error", 2013, contains=expected)


def test_json_object_without_json_content_type_is_accepted(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/messages", content=json.dumps(OK).encode(), headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert response.json()["base_resp"] == SUCCESS


def test_count_tokens_validates_like_messages(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": []})
    assert_error(response, 400, "invalid_request_error", 2013, contains="messages: at least one message is required")
    response = real_http.post(
        "/v1/messages/count_tokens", json={"model": MODEL, "messages": [{"role": "bot", "content": "x"}]}
    )
    assert_error(response, 400, "invalid_request_error", 2013, contains="messages.0.role: Input should be")
    response = real_http.post("/v1/messages/count_tokens", json={"model": "no-such-model", "messages": OK["messages"]})
    assert_error(response, 404, "not_found_error", 2013, contains="model: no-such-model")


ACCEPTED = [
    ("temperature-0", {**OK, "temperature": 0}),
    ("temperature-1", {**OK, "temperature": 1}),
    ("temperature-1.0", {**OK, "temperature": 1.0}),
    ("top_p-1", {**OK, "top_p": 1}),
    ("top_p-small", {**OK, "top_p": 0.01}),
    ("top_k-1", {**OK, "top_k": 1}),
    # prompt + 204800 exceeds the 8192 window: clamped to the room left, never a 400 (a stop keeps it short)
    ("max_tokens-204800-clamped", {**OK, "max_tokens": 204800, "stop_sequences": ["\n", ".", " "], "top_k": 1}),
    ("context_management", {**OK, "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}),
    ("output_config", {**OK, "output_config": {"effort": "high"}}),
    ("unknown-fields", {**OK, "service_tier": "auto", "speed": "fast", "brand_new_field": {"x": [1]}}),
    ("metadata", {**OK, "metadata": {"user_id": "user_123"}}),
    ("system-string", {**OK, "system": "Be brief."}),
    (
        "system-blocks",
        {**OK, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
    ),
    ("thinking-adaptive", {**OK, "thinking": {"type": "adaptive", "display": "omitted"}}),
    ("thinking-disabled", {**OK, "thinking": {"type": "disabled"}}),
    (
        "user_system-role",
        {**OK, "messages": [{"role": "user_system", "content": "I am a knight."}, {"role": "user", "content": "Hi"}]},
    ),
    ("group-role", {**OK, "messages": [{"role": "group", "content": "The tavern"}, {"role": "user", "content": "Hi"}]}),
    (
        "sample_message_user-role",
        {**OK, "messages": [{"role": "sample_message_user", "content": "Hello?"}, {"role": "user", "content": "Hi"}]},
    ),
    (
        "sample_message_ai-role",
        {**OK, "messages": [{"role": "sample_message_ai", "content": "Greetings!"}, {"role": "user", "content": "Hi"}]},
    ),
    (
        "role-play-roles-mid-conversation",
        {
            **OK,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "group", "content": "The scene changes."},
                {"role": "sample_message_ai", "content": "Ahoy!", "name": "Bob"},
                {"role": "user", "content": "And now?"},
            ],
        },
    ),
    ("role-play-only", {**OK, "messages": [{"role": "group", "content": "A quiet library."}]}),
    (
        "ctx-and-msg-roles",
        {**OK, "messages": [{"role": "ctx", "content": "Context."}, {"role": "msg", "content": "Hi"}]},
    ),
    (
        "inline-system-role",
        {
            **OK,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Again"},
            ],
        },
    ),
    (
        "consecutive-user-turns",
        {**OK, "messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "there"}]},
    ),
    (
        "assistant-first",
        {**OK, "messages": [{"role": "assistant", "content": "Welcome."}, {"role": "user", "content": "Hi"}]},
    ),
    (
        "empty-final-assistant",
        {**OK, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]},
    ),
    ("whitespace-text", with_content([{"type": "text", "text": "  "}])),
    ("name-field", {**OK, "messages": [{"role": "user", "content": "Hi", "name": "Alice"}]}),
]


@pytest.mark.parametrize("payload", [pytest.param(p, id=i) for i, p in ACCEPTED])
def test_accepted(real_http: httpx.Client, payload: dict[str, Any]) -> None:
    response = real_http.post("/v1/messages?beta=true", json=payload)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["base_resp"] == SUCCESS
    assert message["type"] == "message" and message["content"]
    assert message["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence")
    assert message["usage"]["input_tokens"] + message["usage"]["cache_read_input_tokens"] > 0


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "1999-01-01"},
        {"anthropic-beta": "token-counting-2024-11-01,some-future-beta-2031-01-01"},
        {
            "anthropic-beta": "interleaved-thinking-2025-05-14",
            "x-app": "cli",
            "user-agent": "claude-cli/2.1.0 (external, cli)",
        },
    ],
    ids=["version", "betas", "claude-code"],
)
def test_headers_never_cause_a_400(real_http: httpx.Client, headers: dict[str, str]) -> None:
    response = real_http.post("/v1/messages", json=OK, headers=headers)
    assert response.status_code == 200, response.text


def test_unknown_model_is_404(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/messages", json={**OK, "model": "gpt-nonexistent-9"})
    assert_error(response, 404, "not_found_error", 2013, contains="model: gpt-nonexistent-9")


PROMPT_TOO_LONG = re.compile(r"prompt is too long: (\d+) tokens > (\d+) maximum")


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_longer_than_the_context_is_400_1039(real_http: httpx.Client, stream: bool) -> None:
    response = real_http.post("/v1/messages", json=body("hello " * 9000, max_tokens=8, stream=stream))
    error = assert_error(response, 400, "invalid_request_error", 1039)
    match = PROMPT_TOO_LONG.fullmatch(error["base_resp"]["status_msg"])
    assert match, error
    prompt, maximum = int(match[1]), int(match[2])
    assert prompt > maximum
    assert maximum == 8192 - 1
    assert error["error"]["message"] == f"{match[0]} (1039)"


def test_prompt_too_long_count_tokens_still_counts(real_http: httpx.Client) -> None:
    response = real_http.post(
        "/v1/messages/count_tokens", json={"model": MODEL, "messages": [{"role": "user", "content": "hello " * 9000}]}
    )
    assert response.status_code == 200
    assert response.json()["input_tokens"] > 8192


# --- the SDK's exception classes ---------------------------------------------------------------


def test_sdk_raises_bad_request(real_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        real_client.messages.create(model=MODEL, max_tokens=0, messages=[{"role": "user", "content": "Hi"}])
    error = caught.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in error.body["error"]["message"]
    assert error.request_id and error.request_id == error.body["request_id"]


def test_sdk_raises_bad_request_for_a_long_prompt(real_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        real_client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hello " * 9000}])
    assert PROMPT_TOO_LONG.search(caught.value.message)


def test_sdk_stream_raises_before_the_stream(real_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        with real_client.messages.stream(model=MODEL, max_tokens=8, messages=[]) as stream:
            stream.get_final_message()


def test_sdk_raises_not_found(real_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        real_client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "model: no-such-model" in caught.value.body["error"]["message"]


def test_sdk_raises_authentication_error(real_url: str) -> None:
    client = anthropic.Anthropic(base_url=real_url, api_key="wrong-" + API_KEY, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"
