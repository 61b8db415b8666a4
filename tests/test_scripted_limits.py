"""Concurrency limits over a stream the scripted engine holds open: the second request gets 429 on every
door while the first runs, its lease comes back when the first ends (client gone included), and the SDKs'
built-in retry honours `retry-after` until it gets in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from rolecall.core.caller import KeyLimits
from rolecall.core.chunks import FinishChunk, TextChunk, UsageChunk
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from rolecall.store.database import database_url
from tests.real_checks import metric_sample
from tests.support.server import running_server
from tests.support.store_keys import create_keys
from tests.support.waiting import wait_until

KEYS = {"one-at-a-time": KeyLimits(concurrency=1), "free": KeyLimits()}
HOLD = [TextChunk("held"), 120.0, FinishChunk("stop"), UsageChunk(3, 1)]  # runs until its client leaves


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture(scope="module")
def served(engine: ScriptedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("limits")
    keys = create_keys(database_url(None, data_dir), KEYS)
    registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
    with running_server(Settings(data_dir=data_dir, ping_interval=0.2), registry) as base:
        yield base, keys


@pytest.fixture(scope="module")
def url(served: tuple[str, dict[str, str]]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def keys(served: tuple[str, dict[str, str]]) -> dict[str, str]:
    return served[1]


def _messages(**extra: Any) -> dict[str, Any]:
    return {"model": "scripted", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}], **extra}


class HeldStream:
    """A streamed request that stays open (the scripted engine pauses) until `release`."""

    def __init__(self, url: str, engine: ScriptedEngine, key: str) -> None:
        engine.enqueue(HOLD)
        self._client = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60)
        self._stream = self._client.stream("POST", "/v1/messages", json=_messages(stream=True))
        self.response = self._stream.__enter__()
        assert self.response.status_code == 200

    def release(self) -> None:
        self._stream.__exit__(None, None, None)
        self._client.close()


@pytest.mark.parametrize(
    "path, status, code_at",
    [
        ("/v1/messages", 429, ("base_resp", "status_code")),
        ("/v1/chat/completions", 429, ("base_resp", "status_code")),
        ("/v1/text/chatcompletion_v2", 200, ("base_resp", "status_code")),
    ],
    ids=["anthropic", "openai", "minimax"],
)
def test_a_held_stream_makes_the_second_request_429(
    url: str, engine: ScriptedEngine, keys: dict[str, str], path: str, status: int, code_at: tuple[str, str]
) -> None:
    held = HeldStream(url, engine, keys["one-at-a-time"])
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": keys["one-at-a-time"]}, timeout=60) as client:
            refused = client.post(path, json=_messages())
            assert refused.status_code == status
            assert refused.json()[code_at[0]][code_at[1]] == 1002
            assert "1 requests at once" in refused.text
            # A stream is refused before it commits to 200: a plain JSON error, no event stream.
            streamed = client.post(path, json=_messages(stream=True))
            assert streamed.status_code == status
            assert streamed.headers["content-type"].startswith("application/json")
            assert streamed.json()[code_at[0]][code_at[1]] == 1002
            with httpx.Client(base_url=url, headers={"x-api-key": keys["free"]}, timeout=60) as other:
                assert other.post(path, json=_messages()).status_code == 200  # another key is not held up
    finally:
        held.release()
    with httpx.Client(base_url=url, headers={"x-api-key": keys["one-at-a-time"]}, timeout=60) as client:
        # The stream's client left: its generation ends and its lease comes back.
        assert wait_until(
            lambda: client.post(path, json=_messages()).json().get("base_resp", {}) != refused.json()["base_resp"]
        )


def _refusals(url: str, key: str, route: str) -> float:
    """How many 429s the server has answered on `route` so far (its Prometheus counter)."""
    metrics = httpx.get(url + "/metrics", headers={"x-api-key": key}, timeout=10).text
    return metric_sample(metrics, "rolecall_requests_total", default=0.0, route=route, status="429")


@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
def test_sdk_retry_honours_retry_after_until_the_lease_comes_back(
    url: str, engine: ScriptedEngine, keys: dict[str, str], sdk: str
) -> None:
    if sdk == "anthropic":
        client: Any = anthropic.Anthropic(base_url=url, api_key=keys["one-at-a-time"], max_retries=5)
        call, route = lambda: client.messages.with_raw_response.create(**_messages()), "/v1/messages"
    else:
        client = openai.OpenAI(base_url=url + "/v1", api_key=keys["one-at-a-time"], max_retries=5)
        call, route = lambda: client.chat.completions.with_raw_response.create(**_messages()), "/v1/chat/completions"
    refused_before = _refusals(url, keys["free"], route)
    held = HeldStream(url, engine, keys["one-at-a-time"])
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: _refusals(url, keys["free"], route) > refused_before, timeout=30)
    finally:
        held.release()
    thread.join(timeout=60)
    assert outcome, "the SDK call did not return"
    assert outcome[0].retries_taken >= 1
    assert outcome[0].status_code == 200


def test_n_choices_are_one_request_under_the_limits(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": keys["one-at-a-time"]}, timeout=60) as client:
        for _ in range(2):  # one lease for both choices, returned once both have ended
            response = client.post("/v1/chat/completions", json=_messages(n=2))
            assert response.status_code == 200, response.text
            assert len(response.json()["choices"]) == 2
