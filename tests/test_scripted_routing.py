"""Model routing and the ancillary routes over HTTP (§1, §2, §11, §12, §13)."""

from __future__ import annotations

import httpx
import pytest

from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.engines.fake import ScriptedEngine
from tests.support.sse import check_stream

MESSAGES = [{"role": "user", "content": "hi"}]


def create(url: str, **fields) -> httpx.Response:
    return httpx.post(
        url + "/v1/messages",
        json={"model": "MiniMax-M2.7", "max_tokens": 8, "messages": MESSAGES, **fields},
        timeout=10,
    )


@pytest.mark.parametrize(
    "model", ["scripted", "MiniMax-M2.7", "claude-3-5-haiku-20241022", "claude-sonnet-4-5", "claude-"]
)
def test_known_names_resolve(model: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("ok"), FinishChunk("stop")])
    response = create(scripted_url, model=model)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model  # echoed verbatim, not the served id

    scripted.enqueue([TextChunk("ok"), FinishChunk("stop")])
    stream = create(scripted_url, model=model, stream=True)
    assert check_stream(stream.content)[0]["message"]["model"] == model


@pytest.mark.parametrize("model", ["gpt-4o", "MiniMax-M2", "minimax-m2.7", "Claude-3", "scripted2", "xclaude-3"])
def test_unknown_model_is_404(model: str, scripted: ScriptedEngine, scripted_url: str) -> None:
    for stream in (False, True):
        response = create(scripted_url, model=model, stream=stream)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-should-retry"] == "false"
        error = response.json()
        message = f"model: {model} not found; served models: scripted, scripted-r1, scripted-hermes, scripted-plain"
        assert error["error"] == {"type": "not_found_error", "message": f"{message} (2013)"}
        assert error["base_resp"] == {"status_code": 2013, "status_msg": message}
        assert error["request_id"] == response.headers["request-id"]
    assert scripted.requests == []


def test_models_list(scripted_url: str) -> None:
    response = httpx.get(scripted_url + "/v1/models")
    assert response.status_code == 200
    page = response.json()
    ids = [item["id"] for item in page["data"]]
    assert ids == ["scripted", "MiniMax-M2.7", "scripted-r1", "scripted-hermes", "scripted-plain"]
    assert not any("*" in name for name in ids)
    assert page["has_more"] is False and page["first_id"] == "scripted" and page["last_id"] == "scripted-plain"
    for item in page["data"]:
        assert item["type"] == "model" and item["created_at"] == "2024-11-01T00:00:00Z"
        assert item["display_name"] and item["max_input_tokens"] == 4096


def test_models_list_paging(scripted_url: str) -> None:
    first = httpx.get(scripted_url + "/v1/models", params={"limit": 1}).json()
    assert [m["id"] for m in first["data"]] == ["scripted"] and first["has_more"] is True
    second = httpx.get(scripted_url + "/v1/models", params={"limit": 1, "after_id": first["last_id"]}).json()
    assert [m["id"] for m in second["data"]] == ["MiniMax-M2.7"] and second["has_more"] is True
    back = httpx.get(scripted_url + "/v1/models", params={"limit": 1, "before_id": "MiniMax-M2.7"}).json()
    assert [m["id"] for m in back["data"]] == ["scripted"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"after_id": "nope"}])
def test_models_list_invalid(params: dict, scripted_url: str) -> None:
    response = httpx.get(scripted_url + "/v1/models", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["scripted", "MiniMax-M2.7"])
def test_get_model(model: str, scripted_url: str) -> None:
    for prefix in ("", "/anthropic"):
        response = httpx.get(f"{scripted_url}{prefix}/v1/models/{model}")
        assert response.status_code == 200
        assert response.json()["id"] == model and response.json()["type"] == "model"


@pytest.mark.parametrize("model", ["claude-*", "claude-3-5-haiku-20241022", "nope"])
def test_get_unlisted_model_is_404(model: str, scripted_url: str) -> None:
    response = httpx.get(f"{scripted_url}/v1/models/{model}")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"model: {model} (2013)"


def test_count_tokens(scripted: ScriptedEngine, scripted_url: str) -> None:
    body = {
        "model": "claude-3-5-haiku-20241022",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "one two three"}],
    }
    response = httpx.post(scripted_url + "/v1/messages/count_tokens", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "input_tokens": (2 + 1) + (3 + 1),
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    # Parity: the same request reports the same prompt size.
    scripted.enqueue([TextChunk("x"), FinishChunk("stop")])
    usage = create(scripted_url, **body).json()["usage"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == response.json()["input_tokens"]
    assert scripted.requests and len(scripted.requests) == 1  # count_tokens did not generate


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required (2013)"),
        ({"temperature": 2}, "temperature: Input should be less than or equal to 1 (2013)"),
        (
            {"messages": [{"role": "user", "content": ""}]},
            "messages.0: all messages must have non-empty content except for the optional final assistant message (2013)",
        ),
        ({"tool_choice": {"type": "any"}}, None),
    ],
)
def test_validation_errors_are_400_for_stream_and_json(
    fields: dict, message: str | None, scripted_url: str, scripted: ScriptedEngine
) -> None:
    payload = {"model": "MiniMax-M2.7", "max_tokens": 8, "messages": MESSAGES, **fields}
    payload = {k: v for k, v in payload.items() if v is not None}
    for stream in (False, True):
        response = httpx.post(scripted_url + "/v1/messages", json={**payload, "stream": stream})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-should-retry"] == "false"
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        if message:
            assert error["error"]["message"] == message
    assert scripted.requests == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_bad_bodies(raw: bytes, scripted_url: str) -> None:
    response = httpx.post(scripted_url + "/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_path_and_wrong_method(scripted_url: str) -> None:
    missing = httpx.get(scripted_url + "/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert missing.headers["request-id"].startswith("req_")
    wrong = httpx.get(scripted_url + "/v1/messages")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"


def test_trailing_slash_and_probe(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("ok"), FinishChunk("stop")])
    response = httpx.post(
        scripted_url + "/v1/messages/", json={"model": "scripted", "max_tokens": 8, "messages": MESSAGES}
    )
    assert response.status_code == 200
    assert httpx.head(scripted_url + "/").status_code == 200
    assert httpx.post(scripted_url + "/api/event_logging/batch", json={"events": []}).json() == {}
