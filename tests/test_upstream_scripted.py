"""engine = "openai" against a scripted vLLM-like upstream: what a tiny real model cannot produce
(reasoning deltas, tool-call arguments split mid-token, usage-only final chunks, failures)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from rolecall.settings import ModelConfig, Settings
from tests.support import vllm_streams as vllm
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.support.upstream import ScriptedUpstream, Status, Stream, serving

BODY = {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def url(upstream: tuple[ScriptedUpstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """rolecall in front of the one scripted upstream (URL given with "/v1"; context and model probed)."""
    model = ModelConfig(id="minimax-m2", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[upstream[1] + "/v1"])
    settings = Settings(models=[model], data_dir=tmp_path_factory.mktemp("upstream-data"), ping_interval=5)
    with running_server(settings) as base:
        yield base


@pytest.fixture
def app(upstream: tuple[ScriptedUpstream, str]) -> Iterator[ScriptedUpstream]:
    scripted = upstream[0]
    yield scripted
    scripted.answers.clear()
    scripted.fail_with = None
    scripted.requests.clear()


def stream(url: str, body: dict) -> list[dict]:
    response = httpx.post(url + "/v1/messages", json={**body, "stream": True}, timeout=30)
    assert response.status_code == 200, response.text
    return check_stream(response.content)


def deltas(events: list[dict], kind: str, field: str) -> str:
    return "".join(
        e["delta"][field] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == kind
    )


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_text_and_cached_usage(url: str, app: ScriptedUpstream, field: str) -> None:
    app.enqueue(Stream(vllm.reasoning_then_text(field, cached=50)))
    events = stream(url, BODY)
    assert deltas(events, "thinking_delta", "thinking") == "The user greets me."
    assert deltas(events, "text_delta", "text") == "Hello! How can I help?"
    prompt = events[0]["message"]["usage"]["input_tokens"]
    assert prompt == 100 + 2  # the upstream's /tokenize count: what was served is what was counted
    usage = events[-2]["usage"]
    assert usage["cache_read_input_tokens"] == 50 and usage["input_tokens"] == prompt - 50
    assert usage["output_tokens"] == 9
    sent = app.chats()[-1]
    assert sent["model"] == "MiniMaxAI/MiniMax-M2.7"  # probed from /v1/models
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_reasoning_goes_back_as_reasoning_content(url: str, app: ScriptedUpstream) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    app.enqueue(Stream(vllm.reasoning_then_text()))
    first = client.messages.create(**BODY)
    assert [block.type for block in first.content] == ["thinking", "text"]
    history = [*BODY["messages"], {"role": "assistant", "content": first.content}, {"role": "user", "content": "and?"}]
    client.messages.create(**{**BODY, "messages": history})
    assistant = app.chats()[-1]["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"] == "Hello! How can I help?"
    assert assistant["reasoning_content"] == assistant["reasoning"] == "The user greets me."


def test_tool_arguments_split_mid_token(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Stream(vllm.split_tool_call()))
    events = stream(url, {**BODY, "tools": [WEATHER]})
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    assert json.loads(deltas(events, "input_json_delta", "partial_json")) == {
        "location": "Paris",
        "unit": "°C",
        "days": 2,
    }
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert app.chats()[-1]["tools"][0]["function"]["name"] == "get_weather"


def test_every_call_at_index_zero_still_makes_two_blocks(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Stream(vllm.two_calls_at_index_zero()))
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    message = client.messages.create(**{**BODY, "tools": [WEATHER]})
    assert [(b.type, b.input) for b in message.content] == [
        ("tool_use", {"location": "Paris"}),
        ("tool_use", {"location": "Oslo"}),
    ]


def test_failure_mid_stream_is_an_error_event(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Stream(vllm.broken_off(), drop=True))
    events = stream(url, BODY)
    assert deltas(events, "text_delta", "text") == "The answer is"
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"


def test_error_chunk_mid_stream_is_an_error_event(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Stream(vllm.error_chunk()))
    events = stream(url, BODY)
    assert events[-1]["type"] == "error" and "EngineCore encountered an issue" in events[-1]["error"]["message"]


@pytest.mark.parametrize("status", [429, 503])
def test_upstream_overload_is_529_with_retry_after(url: str, app: ScriptedUpstream, status: int) -> None:
    app.fail_with = Status(status, {"error": {"message": "busy"}}, {"retry-after": "7"})
    response = httpx.post(url + "/v1/messages", json=BODY, timeout=30)
    assert response.status_code == 529 and response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.headers["x-should-retry"] == "true"


def test_upstream_400_keeps_its_message(url: str, app: ScriptedUpstream) -> None:
    app.fail_with = Status(
        400, {"error": {"message": "top_k must be -1 or at least 1, got 0.", "type": "BadRequestError"}}
    )
    response = httpx.post(url + "/v1/messages", json=BODY, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "top_k must be -1 or at least 1, got 0." in response.json()["error"]["message"]


def test_count_tokens_renders_the_chat_upstream(url: str, app: ScriptedUpstream) -> None:
    body = {
        "model": "MiniMax-M2.7",
        "system": "Be brief.",
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "weather in Paris please"}],
    }
    response = httpx.post(url + "/v1/messages/count_tokens", json=body, timeout=30)
    assert response.status_code == 200 and response.json()["input_tokens"] == 100 + 2 + 4
    sent = [b for path, b in app.requests if path == "/tokenize"][-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["add_generation_prompt"] is True and sent["tools"][0]["function"]["name"] == "get_weather"


def test_prefill_continues_the_final_message(url: str, app: ScriptedUpstream) -> None:
    messages = [*BODY["messages"], {"role": "assistant", "content": "Sure,"}]
    stream(url, {**BODY, "messages": messages})
    httpx.post(url + "/v1/messages/count_tokens", json={**BODY, "messages": messages}, timeout=30)
    tokenize = [b for path, b in app.requests if path == "/tokenize"][-1]
    chat = app.chats()[-1]
    for sent in (tokenize, chat):
        assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False


@pytest.mark.parametrize("owned_by", ["sglang", "ollama"])
def test_a_server_without_chat_tokenize_counts_by_its_own_usage(tmp_path: Path, owned_by: str) -> None:
    """SGLang, Ollama...: no `/tokenize` that renders chats, so the prompt is counted by a one-token
    generation whose usage reports exactly the prompt the server renders. (Ollama has no /health:
    its model list says it is up.)"""
    server = ScriptedUpstream(owned_by=owned_by)
    with serving(server) as upstream_url:
        model = ModelConfig(id="m", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[upstream_url])
        with running_server(Settings(models=[model], data_dir=tmp_path)) as base:
            events = stream(base, BODY)
            counted = httpx.post(
                base + "/v1/messages/count_tokens",
                json={"model": BODY["model"], "messages": BODY["messages"]},
                timeout=30,
            )
    assert events[0]["message"]["usage"]["input_tokens"] == 100 + 2 == counted.json()["input_tokens"]
    probe = next(b for path, b in server.requests if path == "/v1/chat/completions" and b["stream"] is False)
    assert probe["max_tokens"] == 1 and "stream_options" not in probe
    assert not [path for path, _ in server.requests if path == "/tokenize"]


def test_read_timeout_is_configurable(tmp_path: Path) -> None:
    """A replica silent for longer than `read_timeout`: 504 before any text, an error event after some."""
    slow = ScriptedUpstream()
    with serving(slow) as upstream_url:
        model = ModelConfig(
            id="m", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[upstream_url], read_timeout=0.3
        )
        with running_server(Settings(models=[model], data_dir=tmp_path)) as base:
            slow.enqueue(Stream([1.0, *vllm.text_reply("Too late.")]))
            response = httpx.post(base + "/v1/messages", json=BODY, timeout=30)
            assert response.status_code == 504 and response.json()["error"]["type"] == "timeout_error"
            slow.enqueue(Stream([*vllm.broken_off(), 1.0]))
            events = stream(base, BODY)
    assert deltas(events, "text_delta", "text") == "The answer is"
    assert events[-1]["error"]["type"] == "timeout_error"
