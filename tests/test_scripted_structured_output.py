"""Structured output through the pipeline on the scripted engine: the schema reaches the engine, a forced
call's schema wins over it, and an engine that cannot decode under a schema is refused with a 400."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.engines.fake import ScriptedEngine

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
FORMAT = {"type": "json_schema", "schema": SCHEMA}


def post(url: str, **fields: object) -> httpx.Response:
    payload = {"model": "MiniMax-M2.7", "max_tokens": 16, "messages": [{"role": "user", "content": "ok?"}], **fields}
    return httpx.post(url + "/v1/messages", json=payload, timeout=20)


@pytest.mark.parametrize("fields", [{"output_config": {"format": FORMAT}}, {"output_format": FORMAT}])
def test_the_schema_reaches_the_engine(scripted: ScriptedEngine, scripted_url: str, fields: dict) -> None:
    scripted.enqueue([TextChunk('{"ok": true}'), FinishChunk("stop")])
    response = post(scripted_url, **fields)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": '{"ok": true}'}]
    assert scripted.requests[-1].output_schema == SCHEMA


def test_no_format_no_schema(scripted: ScriptedEngine, scripted_url: str) -> None:
    assert post(scripted_url).status_code == 200
    assert scripted.requests[-1].output_schema is None


def test_an_engine_without_schema_decoding_is_refused(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.info = dataclasses.replace(scripted.info, json_schema=False)
    response = post(scripted_url, output_config={"format": FORMAT})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("output_config.format: structured output is not supported by model MiniMax-M2.7")
    assert not scripted.requests, "refused before the engine was called"
    assert post(scripted_url).status_code == 200  # without a format the same engine serves


def test_count_tokens_accepts_the_format(scripted_url: str) -> None:
    payload = {
        "model": "MiniMax-M2.7",
        "messages": [{"role": "user", "content": "ok?"}],
        "output_config": {"format": FORMAT},
    }
    response = httpx.post(scripted_url + "/v1/messages/count_tokens", json=payload, timeout=20)
    assert response.status_code == 200 and response.json()["input_tokens"] > 0


def test_a_forced_call_schema_wins(scripted: ScriptedEngine, scripted_url: str) -> None:
    """With tools prompted by rolecall, a forced call is itself decoded under a schema: the turn is the call."""
    scripted.info = dataclasses.replace(scripted.info, template_tools=False)
    tool = {"name": "answer", "input_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
    scripted.enqueue([TextChunk('[{"name": "answer", "arguments": {"ok": true}}]'), FinishChunk("stop")])
    response = post(scripted_url, tools=[tool], tool_choice={"type": "any"}, output_config={"format": FORMAT})
    assert response.status_code == 200, response.text
    schema = scripted.requests[-1].output_schema
    assert schema is not None and schema["properties"]["name"] == {"const": "answer"}
