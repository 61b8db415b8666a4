"""The OpenAI-side doors end to end over HTTP with the scripted engine: what a tiny real model never
produces (reasoning, tool calls split at awkward places, stops across chunks, mid-stream failures).

Every scenario runs on `/v1/chat/completions` as raw chunks (checked by `check_chunks`), as JSON, and
through the `openai` SDK's stream accumulator; and on `/v1/text/chatcompletion_v2` with its closing frame.
The non-streaming body must equal the fold of the stream on both doors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from rolecall.core.chunks import FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.core.errors import InvalidRequest, Overloaded, UpstreamError
from rolecall.engines.fake import ScriptedEngine, ScriptStep
from rolecall.protocol.openai.fold import fold
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.chunks import check_chunks
from tests.support.server import running_server
from tests.support.waiting import wait_until

CHAT = "/v1/chat/completions"
NATIVE = "/v1/text/chatcompletion_v2"
PROMPT = "one two three four five six seven eight nine ten"
SUCCESS = {"status_code": 0, "status_msg": "success"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "MiniMax-M2.7", "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}], **fields}


def post_stream(url: str, payload: dict, path: str = CHAT, **checks: Any) -> list[dict]:
    response = httpx.post(url + path, json={**payload, "stream": True}, timeout=20)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    return check_chunks(response.content, **checks)


def without_ids(completion: dict) -> dict:
    """A completion with its random parts (ids, created) checked and blanked."""
    completion = json.loads(json.dumps(completion))
    assert completion["id"].startswith("chatcmpl-")
    completion["id"] = completion["created"] = None
    for choice in completion["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            assert call["id"].startswith("call_")
            call["id"] = None
    return completion


def sdk_final(url: str, payload: dict) -> dict:
    """The reply as the `openai` SDK's stream helper accumulates it from the chunks."""
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    known = {key: value for key, value in payload.items() if key in SDK_FIELDS}
    extra = {key: value for key, value in payload.items() if key not in SDK_FIELDS}
    try:
        with client.chat.completions.stream(**known, extra_body=extra) as stream:
            completion = stream.get_final_completion()
    except openai.LengthFinishReasonError as cut:  # the helper refuses a reply cut by max_tokens; it has it
        completion = cut.completion  # type: ignore[assignment]
    return completion.model_dump(exclude_none=True)


SDK_FIELDS = {"model", "messages", "max_tokens", "stop", "tools", "n"}


@dataclass
class Scenario:
    steps: list[ScriptStep]
    message: dict[str, Any]
    finish_reason: str = "stop"
    request: dict = field(default_factory=dict)


THOUGHT = [ReasoningChunk("The user"), ReasoningChunk(" counts."), TextChunk("Eleven"), TextChunk("!")]
SCENARIOS = {
    "text": Scenario(
        [TextChunk("Hello"), TextChunk(" there"), FinishChunk("stop"), UsageChunk(11, 2, 4)],
        {"role": "assistant", "content": "Hello there"},
    ),
    "reasoning-default": Scenario(
        [*THOUGHT, FinishChunk("stop"), UsageChunk(11, 4)],
        {"role": "assistant", "content": "Eleven!", "reasoning_content": "The user counts."},
    ),
    "reasoning-split": Scenario(
        [*THOUGHT, FinishChunk("stop"), UsageChunk(11, 4)],
        {
            "role": "assistant",
            "content": "Eleven!",
            "reasoning_content": "The user counts.",
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "id": "reasoning-text-1",
                    "format": "MiniMax-response-v1",
                    "index": 0,
                    "text": "The user counts.",
                }
            ],
        },
        request={"reasoning_split": True},
    ),
    "reasoning-inline": Scenario(
        [*THOUGHT, FinishChunk("stop"), UsageChunk(11, 4)],
        {"role": "assistant", "content": "<think>\nThe user counts.\n</think>\n\nEleven!"},
        request={"reasoning_split": False},
    ),
    "split-tool-call": Scenario(
        [
            ToolCallChunk(0, "up_1", "get_weather", ""),
            ToolCallChunk(0, None, None, '{"ci'),
            ToolCallChunk(0, None, None, 'ty": "Pa'),
            ToolCallChunk(0, None, None, 'ris"}'),
            FinishChunk("tool_calls"),
            UsageChunk(11, 9),
        ],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": None, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        "tool_calls",
        {"tools": [WEATHER_TOOL]},
    ),
    "stop-across-chunks": Scenario(
        [TextChunk("Hello S"), TextChunk("TO"), TextChunk("P more"), FinishChunk("stop"), UsageChunk(11, 4)],
        {"role": "assistant", "content": "Hello "},
        request={"stop": ["STOP"]},
    ),
    "length": Scenario(
        [TextChunk("a"), TextChunk("b"), FinishChunk("length"), UsageChunk(11, 2)],
        {"role": "assistant", "content": "ab"},
        "length",
    ),
    "named-ai-character": Scenario(
        [TextChunk("Sit."), FinishChunk("stop"), UsageChunk(11, 1)],
        {"role": "assistant", "content": "Sit.", "name": "Mira"},
        request={
            "messages": [
                {"role": "system", "name": "Mira", "content": "A tavern keeper."},
                {"role": "user", "content": "Hi"},
            ]
        },
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    scenario = SCENARIOS[name]
    payload = body(**scenario.request)
    for _ in range(5):
        scripted.enqueue(scenario.steps)

    chunks = post_stream(scripted_url, {**payload, "stream_options": {"include_usage": True}}, usage=True)
    streamed = fold(chunks)
    response = httpx.post(scripted_url + CHAT, json=payload, timeout=20)
    assert response.status_code == 200, response.text
    completion = response.json()
    accumulated = sdk_final(scripted_url, payload)

    assert without_ids(completion) == without_ids(streamed), "the body is the fold of the stream"
    choice = completion["choices"][0]
    assert without_ids(completion)["choices"][0]["message"] == scenario.message
    assert choice["finish_reason"] == scenario.finish_reason
    assert completion["base_resp"] == SUCCESS and completion["model"] == payload["model"]
    # The SDK accumulates the same reply from the stream.
    sdk_message = accumulated["choices"][0]["message"]
    # (The first chunk's `content: ""` is an empty string to the SDK where the body of a tool call has null.)
    assert (sdk_message.get("content") or None) == (choice["message"]["content"] or None)
    assert accumulated["choices"][0]["finish_reason"] == scenario.finish_reason
    for sdk_call, call in zip(
        sdk_message.get("tool_calls") or (), choice["message"].get("tool_calls") or (), strict=True
    ):
        assert sdk_call["function"] == call["function"]

    # MiniMax's native door: the same chunks, then the closing frame, which is the body.
    frames = post_stream(scripted_url, payload, NATIVE, closing_frame=True)
    native = httpx.post(scripted_url + NATIVE, json=payload, timeout=20).json()
    assert without_ids(frames[-1]) == without_ids(native)
    assert without_ids(native)["choices"] == without_ids(completion)["choices"]


def test_several_choices_are_several_generations(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("first"), FinishChunk("stop"), UsageChunk(11, 1)])
    scripted.enqueue([TextChunk("second"), FinishChunk("length"), UsageChunk(11, 1)])
    chunks = post_stream(scripted_url, body(n=2, stream_options={"include_usage": True}), n=2, usage=True)
    completion = fold(chunks)
    assert sorted(c["message"]["content"] for c in completion["choices"]) == ["first", "second"]
    assert [c["index"] for c in completion["choices"]] == [0, 1]
    assert completion["usage"]["completion_tokens"] == 2 and completion["usage"]["prompt_tokens"] == 11
    assert len(scripted.requests) == 2 and scripted.requests[0] == scripted.requests[1]


@pytest.mark.parametrize(
    ("exception", "status", "code", "message"),
    [
        (UpstreamError("boom"), 502, 1013, "boom (1013)"),
        (RuntimeError("secret internals"), 500, 1000, "Internal server error (1000)"),
        (InvalidRequest("bad output"), 400, 2013, "bad output (2013)"),
    ],
)
def test_mid_stream_failure_is_an_error_chunk(
    exception: Exception, status: int, code: int, message: str, scripted: ScriptedEngine, scripted_url: str
) -> None:
    steps = [ReasoningChunk("thinking"), TextChunk("some text"), exception]
    scripted.enqueue(steps)
    frames = post_stream(scripted_url, body())
    assert frames[-1]["error"]["message"] == message and frames[-1]["base_resp"]["status_code"] == code
    assert any(f.get("choices") and f["choices"][0]["delta"].get("content") for f in frames[:-1])

    scripted.enqueue(steps)
    response = httpx.post(scripted_url + CHAT, json=body(), timeout=20)
    assert response.status_code == status
    assert response.json()["error"]["message"] == message

    scripted.enqueue(steps)
    client = openai.OpenAI(base_url=scripted_url + "/v1", api_key="x", max_retries=0, timeout=20)
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(**body(), stream=True):
            pass
    assert message in str(caught.value)

    scripted.enqueue(steps)
    frames = post_stream(scripted_url, body(), NATIVE)
    assert frames[-1] == {"base_resp": {"status_code": code, "status_msg": message}}
    assert scripted.active == 0


def test_engine_failing_at_once_gets_its_http_status_or_minimax_base_resp(
    scripted: ScriptedEngine, scripted_url: str
) -> None:
    scripted.enqueue([Overloaded("every replica is busy", retry_after=3)])
    response = httpx.post(scripted_url + CHAT, json={**body(), "stream": True}, timeout=20)
    assert response.status_code == 529 and response.headers["retry-after"] == "3"
    assert response.json() == {
        "error": {
            "message": "every replica is busy (1002)",
            "type": "server_overloaded",
            "param": None,
            "code": "1002",
        },
        "base_resp": {"status_code": 1002, "status_msg": "every replica is busy"},
    }
    scripted.enqueue([Overloaded("every replica is busy", retry_after=3)])
    response = httpx.post(scripted_url + NATIVE, json=body(), timeout=20)
    assert response.status_code == 200
    assert response.json() == {"base_resp": {"status_code": 1002, "status_msg": "every replica is busy (1002)"}}
    assert scripted.active == 0


@pytest.mark.parametrize("path", [CHAT, NATIVE])
def test_validation_errors_name_the_field(path: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    response = httpx.post(scripted_url + path, json=body(temperature=2.5), timeout=20)
    message = "temperature: Input should be less than or equal to 2"
    if path == CHAT:
        assert response.status_code == 400
        assert response.json()["error"] == {
            "message": f"{message} (2013)",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "2013",
        }
    else:
        assert response.status_code == 200
        assert response.json() == {"base_resp": {"status_code": 2013, "status_msg": f"{message} (2013)"}}
    assert scripted.requests == []


def test_request_reaches_the_engine_shaped(scripted: ScriptedEngine, scripted_url: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    payload = body(
        temperature=0,
        top_k=0,
        seed=7,
        max_completion_tokens=5,
        stop="END",
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    assert httpx.post(scripted_url + CHAT, json=payload, timeout=20).status_code == 200
    generation = scripted.requests[-1]
    assert generation.max_tokens == 5 and generation.stop_sequences == ("END",)
    assert generation.sampling.temperature == 0 and generation.sampling.top_k is None
    assert generation.sampling.seed == 7
    assert generation.output_schema == schema


SLOW = [TextChunk("first"), 30.0, TextChunk("never"), 30.0, FinishChunk("stop")]


@pytest.mark.parametrize("path", [CHAT, NATIVE])
def test_a_client_leaving_closes_every_choice(path: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue(SLOW)
    scripted.enqueue(SLOW)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", scripted_url + path, json=body(n=2, stream=True)) as response:
            assert response.status_code == 200
            received = b""
            for piece in response.iter_bytes():
                received += piece
                if received.count(b'"content":"first"') == 2 and received.endswith(b"\n\n"):
                    assert scripted.active == 2
                    break
    assert wait_until(lambda: scripted.active == 0), "the engine streams were not closed after the client left"

    scripted.enqueue(SLOW)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(scripted_url + path, json=body(), timeout=0.5)
    assert wait_until(lambda: scripted.active == 0), "an abandoned non-stream request kept generating"


def test_keep_alive_comments_fill_a_long_pause(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("a"), 0.7, TextChunk("b"), FinishChunk("stop")])
    response = httpx.post(scripted_url + CHAT, json=body(stream=True), timeout=20)
    assert b": ping\n\n" in response.content  # an SSE comment: the SDKs skip it
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in check_chunks(response.content)) == "ab"


def test_more_choices_than_engine_slots_is_a_400(tmp_path: Any) -> None:
    """Each choice holds a slot for its whole generation: n above the slots could never all run (it would
    wait for itself until the queue timed out), so it is refused up front, naming the limit."""
    engine = ScriptedEngine()
    registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
    settings = Settings(data_dir=tmp_path, max_in_flight=2)
    with running_server(settings, registry=registry) as url:
        response = httpx.post(url + CHAT, json={**body(n=3), "model": "scripted"}, timeout=20)
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("n: model scripted runs at most 2 generations at once")
        assert httpx.post(url + CHAT, json={**body(n=2), "model": "scripted"}, timeout=20).status_code == 200
    assert engine.requests and len(engine.requests) == 2


def test_render_shows_the_same_turns_through_every_door(scripted: ScriptedEngine, scripted_url: str) -> None:
    """`POST /v1/render?door=openai|minimax` reads a chat body as its endpoint does; the SillyTavern scene in
    its chat form and in its Messages form renders to the same turns."""
    from tests.unit.test_door_rendering import SILLYTAVERN, SILLYTAVERN_ANTHROPIC, SILLYTAVERN_RENDERED

    rendered = {}
    for door, payload in (
        ("openai", {**SILLYTAVERN, "model": "MiniMax-M2.7"}),
        ("minimax", {**SILLYTAVERN, "model": "MiniMax-M2.7"}),
        ("anthropic", {**SILLYTAVERN_ANTHROPIC, "model": "MiniMax-M2.7"}),
    ):
        response = httpx.post(f"{scripted_url}/v1/render?door={door}", json=payload, timeout=20)
        assert response.status_code == 200, response.text
        rendered[door] = response.json()
        assert rendered[door]["door"] == door
    assert rendered["openai"]["turns"] == rendered["minimax"]["turns"] == rendered["anthropic"]["turns"]
    assert rendered["openai"]["turns"] == SILLYTAVERN_RENDERED
    assert rendered["openai"]["input_tokens"] == rendered["anthropic"]["input_tokens"]
    assert scripted.requests == []  # nothing was generated
