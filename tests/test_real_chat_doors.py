"""`/v1/chat/completions` and `/v1/text/chatcompletion_v2` with the real bundled model, driven by the official
`openai` SDK and by raw HTTP. Every stream goes through `check_chunks`. SmolLM2's template has no tools, so
forced calls are constrained decoding (as on `/v1/messages`): even a 135M model answers them with the schema's
required keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.real_checks import MODEL, SERVED_ID
from tests.support.chunks import check_chunks
from tests.support.sse import is_json_prefix
from tests.unit.test_door_rendering import SILLYTAVERN, as_openai
from tests.unit.test_role_play_rendering import SALT_LANTERN, WITTY, ZHUGE_LIANG

CHAT = "/v1/chat/completions"
NATIVE = "/v1/text/chatcompletion_v2"
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a timezone.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}
REQUIRED = {tool["function"]["name"]: set(tool["function"]["parameters"]["required"]) for tool in (WEATHER, TIME)}
GREEDY = {"top_k": 1}


def stream_raw(http: httpx.Client, payload: dict[str, Any], path: str = CHAT, **checks: Any) -> list[dict[str, Any]]:
    response = http.post(path, json={**payload, "stream": True})
    assert response.status_code == 200, response.text
    return check_chunks(response.content, **checks)


def test_create_and_stream(real_openai: openai.OpenAI, real_http: httpx.Client) -> None:
    completion = real_openai.chat.completions.create(
        model=MODEL, max_tokens=12, messages=[{"role": "user", "content": "Say hello."}], extra_body=GREEDY
    )
    choice = completion.choices[0]
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == MODEL and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    texts = []
    stream = real_openai.chat.completions.create(
        model=MODEL,
        max_tokens=12,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        texts.extend(choice.delta.content or "" for choice in chunk.choices)
        if not chunk.choices:
            assert chunk.usage is not None and chunk.usage.completion_tokens > 0
    assert "".join(texts)

    frames = stream_raw(
        real_http,
        {"model": MODEL, "max_tokens": 8, "messages": ASK, "stream_options": {"include_usage": True}},
        usage=True,
    )
    assert frames[-1]["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ({"type": "function", "function": {"name": "get_weather"}}, {"get_weather"}),
        ({"type": "function", "function": {"name": "get_time"}}, {"get_time"}),
        ("required", {"get_weather", "get_time"}),
    ],
    ids=["by-name-weather", "by-name-time", "required"],
)
def test_forced_tool_calls_have_the_required_keys(
    real_openai: openai.OpenAI, real_http: httpx.Client, choice: Any, names: set[str]
) -> None:
    completion = real_openai.chat.completions.create(
        model=MODEL, max_tokens=96, messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, extra_body=GREEDY
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = completion.choices[0].message.tool_calls or []
    assert len(calls) == 1 and calls[0].id.startswith("call_") and calls[0].function.name in names
    assert REQUIRED[calls[0].function.name] <= set(json.loads(calls[0].function.arguments))

    payload = {"model": MODEL, "max_tokens": 96, "messages": ASK, "tools": [WEATHER, TIME], "tool_choice": choice}
    frames = stream_raw(real_http, {**payload, **GREEDY})
    deltas = [call for f in frames for call in f["choices"][0]["delta"].get("tool_calls") or ()]
    assert deltas[0]["function"]["name"] in names
    arguments = "".join(call["function"].get("arguments", "") for call in deltas)
    assert REQUIRED[deltas[0]["function"]["name"]] <= set(json.loads(arguments))
    assert frames[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_message_round_trip_and_an_unanswered_call(real_openai: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]}]
    completion = real_openai.chat.completions.create(
        model=MODEL,
        max_tokens=16,
        messages=[*history, {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}],  # type: ignore[list-item]
        tools=[WEATHER],
    )
    assert completion.choices[0].finish_reason in ("stop", "length", "tool_calls")

    with pytest.raises(openai.BadRequestError) as caught:
        real_openai.chat.completions.create(
            model=MODEL,
            max_tokens=16,
            messages=[*history, {"role": "user", "content": "Well?"}],  # type: ignore[list-item]
            tools=[WEATHER],
        )
    assert "call_1" in caught.value.message
    assert caught.value.response.json()["base_resp"]["status_code"] == 2013


def test_response_format_json_schema_parses_with_the_required_keys(real_openai: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    completion = real_openai.chat.completions.create(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
        extra_body=GREEDY,
    )
    person = json.loads(completion.choices[0].message.content or "")
    assert isinstance(person["name"], str) and isinstance(person["age"], int)

    # json_object: decoded under "any object". The tiny model tends to ramble inside the object until the
    # cap, so what comes back is an object, or the start of one when cut by max_tokens (never prose).
    completion = real_openai.chat.completions.create(
        model=MODEL,
        max_tokens=48,
        messages=[{"role": "user", "content": "A JSON object about Paris."}],
        response_format={"type": "json_object"},
        extra_body=GREEDY,
    )
    content = completion.choices[0].message.content or ""
    assert content.startswith("{") and is_json_prefix(content), content
    if completion.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)


def test_stop_is_honoured_exactly(
    real_openai: openai.OpenAI, real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    messages = [{"role": "user", "content": "Count from one to ten in words."}]
    settle()
    free = real_openai.chat.completions.create(model=MODEL, max_tokens=40, messages=messages, extra_body=GREEDY)  # type: ignore[arg-type]
    text = free.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 3, text
    stop = words[2]
    settle()
    stopped = real_openai.chat.completions.create(
        model=MODEL,
        max_tokens=40,
        messages=messages,  # type: ignore[arg-type]
        stop=[stop],
        extra_body=GREEDY,
    )
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    settle()
    frames = stream_raw(real_http, {"model": MODEL, "max_tokens": 40, "messages": messages, "stop": stop, **GREEDY})
    assert "".join(f["choices"][0]["delta"].get("content") or "" for f in frames) == text[: text.index(stop)]


def test_n_choices(real_openai: openai.OpenAI, real_http: httpx.Client) -> None:
    completion = real_openai.chat.completions.create(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Tell me a word."}], n=2, temperature=1.0
    )
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all(choice.message.content for choice in completion.choices)
    payload = {"model": MODEL, "max_tokens": 8, "messages": ASK, "n": 2, "stream_options": {"include_usage": True}}
    stream_raw(real_http, payload, n=2, usage=True)


def test_models_list_reads_in_both_sdks(real_openai: openai.OpenAI) -> None:
    models = real_openai.models.list()
    ids = [model.id for model in models]
    assert SERVED_ID in ids and MODEL in ids
    first = models.data[0]
    assert first.object == "model" and first.owned_by == "rolecall" and first.created > 0


def test_typed_exceptions(real_openai: openai.OpenAI, real_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        real_openai.chat.completions.create(model=MODEL, max_tokens=0, messages=ASK)  # type: ignore[arg-type]
    assert bad.value.status_code == 400 and "max_tokens" in bad.value.message
    wrong_key = openai.OpenAI(base_url=real_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        wrong_key.chat.completions.create(model=MODEL, max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    assert unauthorized.value.response.json()["base_resp"]["status_code"] == 2049
    with pytest.raises(openai.NotFoundError) as missing:
        real_openai.chat.completions.create(model="gpt-9", max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    assert f"served models: {SERVED_ID}" in missing.value.message


def test_follow_up_turns_report_cached_tokens(real_openai: openai.OpenAI, settle: Callable[[], None]) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are a helpful assistant who answers briefly. " * 8},
        {"role": "user", "content": "Name a colour."},
    ]
    first = real_openai.chat.completions.create(model=MODEL, max_tokens=8, messages=messages, extra_body=GREEDY)
    settle()
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Another?"},
    ]
    second = real_openai.chat.completions.create(model=MODEL, max_tokens=8, messages=messages, extra_body=GREEDY)
    usage = second.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert 0 < (usage.prompt_tokens_details.cached_tokens or 0) < usage.prompt_tokens


@pytest.mark.parametrize("path", [CHAT, NATIVE])
@pytest.mark.parametrize(
    "scene",
    [
        SILLYTAVERN,
        as_openai(ZHUGE_LIANG),
        as_openai(WITTY),
        as_openai(SALT_LANTERN),
        {"messages": [{"role": "system", "name": "AI助手", "content": "你是一个幽默风趣的聊天伙伴"},
                      {"role": "user", "name": "用户", "content": "明天准备去爬山"}]},
    ],
    ids=["sillytavern", "zhuge-liang", "witty", "salt-lantern", "named"],
)  # fmt: skip
def test_role_play_requests_answer_on_both_doors(real_http: httpx.Client, path: str, scene: dict[str, Any]) -> None:
    payload = {**scene, "model": MODEL, "max_tokens": 12}
    response = real_http.post(path, json={**payload, "stream": False})
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert completion["choices"][0]["message"]["role"] == "assistant"
    if scene["messages"][0].get("name") == "AI助手":
        assert completion["choices"][0]["message"]["name"] == "AI助手"
    stream_raw(real_http, payload, path, closing_frame=path == NATIVE)


def test_native_door_errors_are_http_200_with_base_resp(real_http: httpx.Client) -> None:
    response = real_http.post(NATIVE, json={"model": "gpt-9", "messages": ASK})
    assert response.status_code == 200
    assert response.json()["base_resp"]["status_code"] == 2013
    assert "choices" not in response.json()
    response = httpx.post(str(real_http.base_url) + NATIVE, json={"model": MODEL, "messages": ASK})
    assert response.status_code == 200 and response.json()["base_resp"]["status_code"] == 1004
