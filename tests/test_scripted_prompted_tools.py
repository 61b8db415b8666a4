"""Prompted tools end to end with a scripted engine whose template has no tool support: the engine gets
no `tools`, a forced choice is constrained by a JSON schema, and its JSON answer becomes a tool_use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.engines.base import EngineInfo
from rolecall.engines.fake import ScriptedEngine
from rolecall.engines.openai_wire import chat_payload
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.server import running_server
from tests.support.sse import check_stream

WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
ASK = {"role": "user", "content": "Weather in Oslo?"}


@pytest.fixture
def engine() -> ScriptedEngine:
    engine = ScriptedEngine()
    engine.info = EngineInfo(context_window=4096, template_tools=False)
    return engine


@pytest.fixture
def url(engine: ScriptedEngine, data_dir: Path) -> Iterator[str]:
    served = ServedModel(id="tiny", engine=engine, display_name="Tiny", created_at="2024-11-01T00:00:00Z")
    with running_server(Settings(data_dir=data_dir), registry=ModelRegistry([served])) as url:
        yield url


def ask(url: str, stream: bool, **fields: object) -> httpx.Response:
    payload = {"model": "tiny", "max_tokens": 64, "messages": [ASK], "tools": [WEATHER], "stream": stream, **fields}
    return httpx.post(url + "/v1/messages", json=payload, timeout=20)


@pytest.mark.parametrize("stream", [False, True])
def test_forced_choice_json_answer_becomes_a_tool_use(engine: ScriptedEngine, url: str, stream: bool) -> None:
    engine.enqueue(
        [
            TextChunk('{\n  "name": "get_'),
            TextChunk('weather",\n  "arguments": {"ci'),
            TextChunk('ty": "Oslo"}\n}'),
            FinishChunk("stop"),
        ]
    )
    response = ask(url, stream, tool_choice={"type": "any"})
    assert response.status_code == 200, response.text
    if stream:
        events = check_stream(response.content)
        start = next(e for e in events if e["type"] == "content_block_start")
        assert start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "get_weather"
        arguments = "".join(e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("partial_json"))
        assert arguments == '{"city": "Oslo"}'
        assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"
    else:
        message = response.json()
        assert [block["type"] for block in message["content"]] == ["tool_use"]
        assert message["content"][0]["input"] == {"city": "Oslo"} and message["stop_reason"] == "tool_use"

    sent = engine.requests[-1]
    assert sent.tool_syntax == "json" and sent.output_schema is not None
    wire = chat_payload(sent, None)
    assert "tools" not in wire and wire["response_format"]["json_schema"]["schema"] == sent.output_schema


def test_auto_choice_parses_hermes_markup(engine: ScriptedEngine, url: str) -> None:
    engine.enqueue(
        [
            TextChunk("Sure.\n<tool_"),
            TextChunk('call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}'),
            TextChunk("\n</tool_call>"),
            FinishChunk("stop"),
        ]
    )
    message = ask(url, False).json()
    assert [block["type"] for block in message["content"]] == ["text", "tool_use"]
    assert message["content"][0]["text"] == "Sure." and message["stop_reason"] == "tool_use"
    assert "# Tools" in engine.requests[-1].turns[0].text


def test_forced_answer_cut_short_is_returned_as_text(engine: ScriptedEngine, url: str) -> None:
    engine.enqueue([TextChunk('{"name": "get_weather", "argu'), FinishChunk("length")])
    message = ask(url, False, tool_choice={"type": "any"}).json()
    assert message["stop_reason"] == "max_tokens"
    assert message["content"] == [{"type": "text", "text": '{"name": "get_weather", "argu'}]
