"""Hostile input on the OpenAI-side doors, property-based: whatever the body, `/v1/chat/completions` answers
a 2xx (chunks that pass `check_chunks`, or a body) or a 4xx in OpenAI's envelope, and
`/v1/text/chatcompletion_v2` an HTTP 200 with `base_resp`; never a 5xx and never a hang. Scripted engine,
bounded and derandomized examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.chunks import check_chunks
from tests.support.server import running_server

CHAT, NATIVE = "/v1/chat/completions", "/v1/text/chatcompletion_v2"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROLES = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "user_system",
    "group",
    "sample_message_user",
    "sample_message_ai",
    "bot",
]
NAMES = st.none() | st.sampled_from(["诸葛亮", "example_user", "example_assistant", "Mira", "", "a b"])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
parts = st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30)}) | st.fixed_dictionaries(
    {"type": st.sampled_from(["image_url", "audio", ""])}, optional={"image_url": json_values}
)
calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["c1", "c2"]),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.sampled_from(["f", "g"]), "arguments": st.sampled_from(["{}", '{"a": 1}', "[", "", "7"])}
            ),
        }
    ),
    max_size=2,
)


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Chat bodies that are mostly well formed (so shaping and generation run), with odd parts mixed in."""
    messages = []
    for _ in range(draw(st.integers(0, 5))):
        message: dict[str, Any] = {"role": draw(st.sampled_from(ROLES))}
        content = draw(st.none() | st.text(max_size=40) | st.lists(parts, max_size=2))
        if content is not None or draw(st.booleans()):
            message["content"] = content
        name = draw(NAMES)
        if name is not None:
            message["name"] = name
        if message["role"] == "assistant" and draw(st.booleans()):
            message["tool_calls"] = draw(calls)
        if message["role"] == "tool":
            message["tool_call_id"] = draw(st.sampled_from(["c1", "c2", "zz"]))
        if draw(st.integers(0, 5)) == 0:
            message["reasoning_content"] = draw(st.text(max_size=10))
        messages.append(message)
    body: dict[str, Any] = {"model": draw(st.sampled_from(["MiniMax-M2.7"] * 6 + ["nope", ""])), "messages": messages}
    optional = {
        "stream": st.booleans(),
        "max_tokens": st.integers(-1, 300_000),
        "max_completion_tokens": st.integers(0, 64),
        "temperature": st.floats(-1, 3),
        "top_k": st.integers(-1, 5),
        "n": st.integers(0, 9),
        "stop": st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=17),
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])})}
            ),
            max_size=2,
        ),
        "tool_choice": st.sampled_from(["auto", "none", "required", "any"])
        | st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.text(max_size=2)})}
        ),
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])}
        ),
        "reasoning_split": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@pytest.fixture(scope="module")
def fuzz_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    engine = ScriptedEngine(context_window=1 << 20)
    registry = ModelRegistry(
        [ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z", aliases=["MiniMax-M2.7"])]
    )
    config = Settings(data_dir=tmp_path_factory.mktemp("chat-fuzz"), queue_length=256, max_messages=40)
    with running_server(config, registry=registry) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def assert_well_answered(response: httpx.Response, path: str, body: Any) -> None:
    if path == NATIVE:
        assert response.status_code == 200, response.text[:500]
    else:
        assert response.status_code < 500, response.text[:500]
    if response.headers["content-type"].startswith("text/event-stream"):
        n = body.get("n") or 1 if isinstance(body, dict) else 1
        usage = bool(isinstance(body, dict) and (body.get("stream_options") or {}).get("include_usage"))
        check_chunks(response.content, n=n, usage=usage, closing_frame=path == NATIVE)
        return
    answer = response.json()
    if response.status_code >= 300:
        error = answer["error"]
        assert set(error) == {"message", "type", "param", "code"}, answer
        assert error["message"].endswith(f"({error['code']})") and answer["base_resp"]["status_code"] != 0
    elif "choices" in answer:
        assert answer["object"] == "chat.completion" and answer["base_resp"]["status_code"] == 0
    else:
        assert set(answer) == {"base_resp"} and answer["base_resp"]["status_code"] != 0, answer


@FUZZ
@given(body=chat_requests(), path=st.sampled_from([CHAT, NATIVE]))
def test_generated_requests(fuzz_http: httpx.Client, body: dict, path: str) -> None:
    response = fuzz_http.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert_well_answered(response, path, body)


@FUZZ
@given(raw=st.binary(max_size=300), path=st.sampled_from([CHAT, NATIVE]))
def test_raw_bytes(fuzz_http: httpx.Client, raw: bytes, path: str) -> None:
    response = fuzz_http.post(path, content=raw, headers={"content-type": "application/json"})
    assert_well_answered(response, path, None)
