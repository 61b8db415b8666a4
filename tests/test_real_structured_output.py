"""Structured output on /v1/messages with the real model: `output_config.format` (and the beta's
`output_format`) decode the answer under the JSON schema, so its text parses and satisfies the schema."""

from __future__ import annotations

import json
from collections.abc import Callable

import anthropic
import httpx
import pydantic
import pytest

from tests.real_checks import MODEL, assert_error, block_text, body, post_stream, stream_text

GREEDY = {"top_k": 1}


class City(pydantic.BaseModel):
    """What the schema asks for; `forbid` and strict types make validation the schema check."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    name: str
    country: str
    population: int


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "country": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "country", "population"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Tell me about Lisbon: its name, country and population."}]


def test_sdk_parse_returns_the_typed_object(real_client: anthropic.Anthropic) -> None:
    message = real_client.messages.parse(
        model=MODEL, max_tokens=200, messages=ASK, output_format=City, extra_body=GREEDY
    )
    assert message.stop_reason == "end_turn"
    assert isinstance(message.parsed_output, City)
    assert City.model_validate_json(message.content[0].text) == message.parsed_output


def test_sdk_stream_with_output_format(real_client: anthropic.Anthropic) -> None:
    with real_client.messages.stream(
        model=MODEL, max_tokens=200, messages=ASK, output_format=City, extra_body=GREEDY
    ) as stream:
        final = stream.get_final_message()
    assert isinstance(final.parsed_output, City)


def test_sdk_beta_parse(real_client: anthropic.Anthropic) -> None:
    message = real_client.beta.messages.parse(
        model=MODEL,
        max_tokens=200,
        messages=ASK,
        output_format=City,
        betas=["structured-outputs-2025-11-13"],
        extra_body=GREEDY,
    )
    assert isinstance(message.parsed_output, City)


@pytest.mark.parametrize(
    "fields",
    [
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},  # the beta's raw wire form
        {"output_config": {"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}},
    ],
)
def test_raw_text_satisfies_the_schema_streamed_or_not(
    real_http: httpx.Client, fields: dict, settle: Callable[[], None]
) -> None:
    payload = {"model": MODEL, "max_tokens": 200, "messages": ASK, **GREEDY, **fields}
    settle()
    message = real_http.post("/v1/messages", json=payload).json()
    City.model_validate_json(block_text(message["content"]))
    settle()
    _, events = post_stream(real_http, payload)
    assert City.model_validate_json(stream_text(events)) == City.model_validate_json(block_text(message["content"]))


def test_a_nested_schema_with_an_array(real_http: httpx.Client) -> None:
    schema = {
        "type": "object",
        # maxLength: the grammar ends each string, so greedy text cannot run a color on to max_tokens.
        "properties": {
            "colors": {"type": "array", "items": {"type": "string", "maxLength": 16}, "minItems": 2, "maxItems": 3}
        },
        "required": ["colors"],
        "additionalProperties": False,
    }
    payload = body("Name the colors of the French flag.", max_tokens=120, **GREEDY)
    payload["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    answer = json.loads(block_text(real_http.post("/v1/messages", json=payload).json()["content"]))
    assert set(answer) == {"colors"} and 2 <= len(answer["colors"]) <= 3
    assert all(isinstance(color, str) for color in answer["colors"])


def test_the_format_given_twice_is_a_400(real_http: httpx.Client) -> None:
    fmt = {"type": "json_schema", "schema": SCHEMA}
    response = real_http.post("/v1/messages", json=body(output_config={"format": fmt}, output_format=fmt))
    assert_error(response, 400, "invalid_request_error", 2013, "output_format: give the format once")


def test_a_format_that_is_not_json_schema_is_a_400(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/messages", json=body(output_config={"format": {"type": "json"}}))
    assert_error(response, 400, "invalid_request_error", 2013, "output_config.format.type: Input should be")
