"""protocol/validation and protocol/errors: the `<path>: <message>` wording and the error envelope."""

from __future__ import annotations

import json

import pytest

from rolecall.core.errors import (
    EngineTimeout,
    InternalError,
    InvalidCredentials,
    InvalidRequest,
    MissingCredentials,
    NotFound,
    Overloaded,
    PromptTooLong,
    RateLimited,
    RequestTooLarge,
    RolecallError,
    UpstreamError,
)
from rolecall.protocol.anthropic.blocks import TextBlock
from rolecall.protocol.anthropic.errors import error_envelope
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body

USER = [{"role": "user", "content": "hi"}]
BASE = {"model": "m", "max_tokens": 16, "messages": USER}

ROLES = (
    "'user', 'assistant', 'user_system', 'group', 'sample_message_user', 'sample_message_ai', 'system', 'ctx' or 'msg'"
)
BLOCK_TAGS = "'text', 'image', 'document', 'search_result', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"


def _error(body: bytes, model: type = MessagesRequest) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(model, body)
    assert caught.value.status == 400 and caught.value.code == 2013
    return caught.value.message


def _with(**fields) -> bytes:
    body = {**BASE, **fields}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_with(max_tokens=...), "max_tokens: Field required"),
        (_with(model=...), "model: Field required"),
        (_with(messages=...), "messages: Field required"),
        (_with(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (_with(temperature=-0.1), "temperature: Input should be greater than or equal to 0"),
        (_with(top_p=0), "top_p: Input should be greater than 0"),
        (_with(top_p=1.01), "top_p: Input should be less than or equal to 1"),
        (_with(top_k=-1), "top_k: Input should be greater than or equal to 0"),
        (_with(max_tokens=204801), "max_tokens: Input should be less than or equal to 204800"),
        (_with(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        (_with(model=""), "model: String should have at least 1 character"),
        (_with(stop_sequences=[""]), "stop_sequences.0: String should have at least 1 character"),
        (_with(messages=[{"role": "bot", "content": "x"}]), f"messages.0.role: Input should be {ROLES}"),
        (
            _with(messages=[*USER, {"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"}]),
            f"messages.2.role: Input should be {ROLES}",
        ),
        (
            _with(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            f"messages.0.content.0.type: Input tag 'video' does not match any of the expected tags: {BLOCK_TAGS}",
        ),
        (
            _with(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "audio"}]}]),
            f"messages.0.content.1.type: Input tag 'audio' does not match any of the expected tags: {BLOCK_TAGS}",
        ),
        (_with(messages=[{"role": "user", "content": [{"text": "a"}]}]), "messages.0.content.0.type: Field required"),
        (_with(system=[{"type": "text"}]), "system.0.text: Field required"),
        (
            _with(thinking={"type": "enabled", "budget_tokens": 100}),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            _with(thinking={"type": "sometimes"}),
            "thinking.type: Input tag 'sometimes' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'",
        ),
        (
            _with(tool_choice={"type": "maybe"}),
            "tool_choice.type: Input tag 'maybe' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_field_errors(body: bytes, message: str) -> None:
    assert _error(body) == message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_tokens", True, "max_tokens: Input should be a valid integer"),
        ("temperature", True, "temperature: Input should be a valid number"),
        ("temperature", False, "temperature: Input should be a valid number"),
        ("top_p", True, "top_p: Input should be a valid number"),
        ("top_k", True, "top_k: Input should be a valid integer"),
        ("max_tokens", "16", "max_tokens: Input should be a valid integer"),
        ("temperature", "0.5", "temperature: Input should be a valid number"),
        ("stream", 1, "stream: Input should be a valid boolean"),
        ("stream", "true", "stream: Input should be a valid boolean"),
    ],
)
def test_booleans_and_strings_are_not_numbers(field: str, value: object, message: str) -> None:
    assert _error(_with(**{field: value})) == message


def test_thinking_budget_must_be_an_integer_not_a_boolean() -> None:
    assert _error(_with(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": True})) == (
        "thinking.enabled.budget_tokens: Input should be a valid integer"
    )


@pytest.mark.parametrize("body", [b"{", b"", b"{'model': 1}", b'{"model": "m",}', b"not json"])
def test_invalid_json(body: bytes) -> None:
    assert _error(body).startswith("Request body is not valid JSON")


@pytest.mark.parametrize("body", [b"[]", b"3", b"null", b'"text"', b"true", b'[{"model": "m"}]'])
def test_non_object_body(body: bytes) -> None:
    assert _error(body) == "Request body must be a JSON object"


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 0},
        {"temperature": 1},
        {"temperature": 0.7},
        {"top_p": 1},
        {"top_p": 0.01},
        {"top_k": 1},
        {"max_tokens": 1},
        {"max_tokens": 204800},
        {"stream": True},
        {"stream": False},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"thinking": {"type": "disabled"}},
        {"thinking": {"type": "adaptive", "display": "omitted"}},
        {"tool_choice": {"type": "auto"}},
        {"metadata": {"user_id": None}},
    ],
)
def test_valid_values_accepted(fields: dict) -> None:
    parse_body(MessagesRequest, _with(**fields))


def test_unknown_top_level_fields_are_ignored() -> None:
    request = parse_body(
        MessagesRequest,
        _with(
            service_tier="auto",
            container=None,
            context_management={"edits": []},
            mcp_servers=[],
            speed="fast",
            some_future_field={"x": [1, 2]},
            output_config={"effort": "high"},
        ),
    )
    assert request.max_tokens == 16 and not hasattr(request, "some_future_field")


def test_unknown_block_fields_are_ignored() -> None:
    request = parse_body(
        MessagesRequest,
        _with(messages=[{"role": "user", "content": [{"type": "text", "text": "a", "citations": [], "extra": 1}]}]),
    )
    assert request.messages[0].content == [TextBlock(type="text", text="a")]


def test_string_content_is_shorthand_for_one_text_block() -> None:
    request = parse_body(MessagesRequest, _with(system="be brief"))
    assert request.messages[0].content == [TextBlock(type="text", text="hi")]
    assert request.system == [TextBlock(type="text", text="be brief")]


def test_empty_string_content_means_no_blocks() -> None:
    request = parse_body(MessagesRequest, _with(messages=[*USER, {"role": "assistant", "content": ""}]))
    assert request.messages[1].content == []


@pytest.mark.parametrize("kind", ["server_tool_use", "web_search_tool_result", "container_upload", "mid_conv_system"])
def test_history_only_blocks_accepted(kind: str) -> None:
    body = _with(
        messages=[*USER, {"role": "assistant", "content": [{"type": kind, "id": "x"}, {"type": "text", "text": "a"}]}]
    )
    assert parse_body(MessagesRequest, body).messages[1].content[0].type == kind


def test_count_tokens_does_not_need_max_tokens() -> None:
    request = parse_body(CountTokensRequest, json.dumps({"model": "m", "messages": USER}).encode())
    assert request.model == "m"
    assert _error(json.dumps({"model": "m"}).encode(), CountTokensRequest) == "messages: Field required"


# --- the error envelope -------------------------------------------------------------------------------------------


def test_error_envelope_shape() -> None:
    envelope = error_envelope(InvalidRequest("max_tokens: Field required"), "req_abc")
    assert envelope == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required (2013)"},
        "request_id": "req_abc",
        "base_resp": {"status_code": 2013, "status_msg": "max_tokens: Field required"},
    }


@pytest.mark.parametrize(
    ("error", "status", "error_type", "code", "headers"),
    [
        (InvalidRequest("x"), 400, "invalid_request_error", 2013, {"x-should-retry": "false"}),
        (PromptTooLong(9000, 8191), 400, "invalid_request_error", 1039, {"x-should-retry": "false"}),
        (MissingCredentials("x"), 401, "authentication_error", 1004, {"x-should-retry": "false"}),
        (InvalidCredentials("x"), 401, "authentication_error", 2049, {"x-should-retry": "false"}),
        (NotFound("x"), 404, "not_found_error", 2013, {"x-should-retry": "false"}),
        (RequestTooLarge("x"), 413, "request_too_large", 2013, {"x-should-retry": "false"}),
        (
            RateLimited("x", retry_after=3),
            429,
            "rate_limit_error",
            1002,
            {"x-should-retry": "true", "retry-after": "3"},
        ),
        (InternalError("x"), 500, "api_error", 1000, {"x-should-retry": "true"}),
        (UpstreamError("x"), 502, "api_error", 1013, {"x-should-retry": "true"}),
        (EngineTimeout("x"), 504, "timeout_error", 1001, {"x-should-retry": "true"}),
        (
            Overloaded("Overloaded", retry_after=1.6),
            529,
            "overloaded_error",
            1002,
            {"x-should-retry": "true", "retry-after": "2"},
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, RolecallError) else None,
)
def test_error_types(error: RolecallError, status: int, error_type: str, code: int, headers: dict) -> None:
    assert (error.status, error.error_type, error.code) == (status, error_type, code)
    assert error.headers() == headers
    envelope = error_envelope(error, None)
    assert envelope["error"] == {"type": error_type, "message": f"{error.message} ({code})"}
    assert envelope["base_resp"] == {"status_code": code, "status_msg": error.message}
    assert envelope["request_id"] is None


def test_prompt_too_long_wording() -> None:
    assert PromptTooLong(9000, 8191).message == "prompt is too long: 9000 tokens > 8191 maximum"


@pytest.mark.parametrize(
    ("status", "retry"),
    [(400, False), (404, False), (408, True), (409, True), (429, True), (500, True), (503, True), (529, True)],
)
def test_should_retry_rule(status: int, retry: bool) -> None:
    error = RolecallError("x")
    error.status = status
    assert error.should_retry is retry
