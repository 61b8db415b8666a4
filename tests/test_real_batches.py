"""Message Batches' acceptance run (issue #12) with the real bundled model through the official `anthropic` SDK:
a 50-request batch mixing plain, role-play (user_system, group, sample_message_* roles, speaker names), tool
and invalid-at-run-time requests (a prompt longer than the context: valid when created, errored when run) ends
with the right counts, one result per request, each succeeded result the very body `POST /v1/messages` answers
for the same request and each errored one its error; another key sees none of it; the operator's CLI reads it
from the store. Greedy (`top_k: 1`) with at most 4 new tokens (40 for the one forced tool call) keeps it quick."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import anthropic
import httpx
import orjson
import pytest

from rolecall.cli import main
from rolecall.core.caller import KeyLimits
from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.service.runtime import build_registry
from rolecall.settings import Settings, default_models
from rolecall.store.database import database_url
from tests.real_checks import MODEL
from tests.support.server import running_server
from tests.support.store_keys import create_keys
from tests.support.waiting import wait_until
from tests.test_real_tools import TIME, WEATHER
from tests.unit.test_role_play_rendering import SALT_LANTERN

MOOD = {
    "name": "set_mood",
    "description": "Set the tavern's mood.",
    "input_schema": {
        "type": "object",
        "properties": {"mood": {"type": "string", "enum": ["calm", "rowdy"]}},
        "required": ["mood"],
    },
}
TOO_LONG = "lantern " * 9000  # past the bundled model's 8192-token context: refused only when it runs


def _params(max_tokens: int = 8, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "top_k": 1, **fields}


def _batch() -> dict[str, dict[str, Any]]:
    """custom_id -> params: 20 plain, 15 role-play, 10 with tools, 5 too long for the context. Requests that share
    a prompt's beginning come one after the other, so the engine's prefix cache keeps the run short (prompt
    processing is most of a request's time on the 1-thread engine of the tests)."""
    topics = ["rivers", "colours", "birds", "cities", "stars"]
    requests = {
        f"plain-{i}": _params(1 + i % 4, messages=[{"role": "user", "content": f"Name {2 + i % 3} {topics[i % 5]}."}])
        for i in range(20)
    }
    # The Salt Lantern scene (user_system, group, sample_message_* roles), its speakers named, then one new line.
    scene = [
        {**message, "name": "Tomas" if "user" in message["role"] else "Mira"} for message in SALT_LANTERN["messages"]
    ]
    asks = ["What now?", "Tell me a secret.", "Is it raining?", "Who goes there?", "Pour me a drink."]
    for i in range(15):
        last = {"role": "user", "content": asks[i % 5], "name": "Tomas"}
        requests[f"roleplay-{i}"] = _params(1 + i % 4, system=SALT_LANTERN["system"], messages=[*scene, last])
    weather = [{"role": "user", "content": "What is the weather in Paris?"}]
    history = [
        *weather,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                            "input": {"city": "Paris", "unit": "celsius"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C, rain"}]},
    ]  # fmt: skip
    for i in range(9):  # tools offered; five of them answering a tool_result
        requests[f"tool-{i}"] = _params(1 + i % 4, messages=history if i >= 4 else weather, tools=[WEATHER, TIME])
    # A forced call: constrained decoding makes it a tool_use block (an enum, complete within 40 tokens).
    requests["tool-forced"] = _params(
        40, messages=weather, tools=[MOOD], tool_choice={"type": "tool", "name": "set_mood"}
    )
    for i in range(5):
        requests[f"too-long-{i}"] = _params(4, messages=[{"role": "user", "content": f"{i} {TOO_LONG}"}])
    assert len(requests) == 50
    return requests


REQUESTS = _batch()


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    data_dir: Path
    engine: EmbeddedLlamaCpp

    def client(self, key: str = "owner") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.keys[key], max_retries=0, timeout=120)

    def settle(self) -> None:
        """Every llama.cpp slot idle, so a greedy run is not tipped by another's cache layout (conftest.settle)."""
        url, key = self.engine.endpoint

        def idle() -> bool:
            slots = httpx.get(url + "/slots", headers={"authorization": f"Bearer {key}"}, timeout=10).json()
            return not any(slot["is_processing"] for slot in slots)

        assert wait_until(idle, timeout=120.0, interval=0.01)


@dataclass
class Ended:
    batch: Any  # the SDK's MessageBatch once ended
    results: dict[str, dict[str, Any]]  # custom_id -> its line of the results file, as served
    raw: bytes  # the results file as served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("real-batches")
    keys = create_keys(database_url(None, data_dir), {"owner": KeyLimits(), "stranger": KeyLimits()})
    settings = Settings(data_dir=data_dir, models=[m.model_copy(update={"threads": 1}) for m in default_models()])
    registry = build_registry(settings.models)
    engine = registry.models[0].engine
    assert isinstance(engine, EmbeddedLlamaCpp)
    with running_server(settings, registry=registry) as url:
        yield Served(url, keys, data_dir, engine)


@pytest.fixture(scope="module")
def ended(served: Served) -> Ended:
    client = served.client()
    requests = [{"custom_id": custom_id, "params": params} for custom_id, params in REQUESTS.items()]
    created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert created.processing_status == "in_progress" and created.request_counts.processing == 50
    batch = created

    def done() -> bool:
        nonlocal batch
        batch = client.messages.batches.retrieve(created.id)
        return batch.processing_status == "ended"

    assert wait_until(done, timeout=600, interval=0.2), batch
    raw = httpx.get(batch.results_url, headers={"x-api-key": served.keys["owner"]}, timeout=60).content
    results = {line["custom_id"]: line for line in map(json.loads, raw.splitlines())}
    # The SDK reads the same file (GET the batch, then its results_url) into its own types.
    parsed = [(line.custom_id, line.result.type) for line in client.messages.batches.results(created.id)]
    assert parsed == [(custom_id, line["result"]["type"]) for custom_id, line in results.items()]
    return Ended(batch, results, raw)


def test_the_batch_ends_with_the_right_counts_and_one_result_per_request(ended: Ended) -> None:
    counts = ended.batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled, counts.expired) == (0, 45, 5, 0, 0)
    assert set(ended.results) == set(REQUESTS) and ended.raw.count(b"\n") == 50
    for custom_id, line in ended.results.items():
        result = line["result"]
        if custom_id.startswith("too-long"):
            assert result["type"] == "errored", line
            error = result["error"]
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
            assert error["error"]["message"].startswith("prompt is too long: "), error
            continue
        assert result["type"] == "succeeded", line
        message = result["message"]
        assert message["type"] == "message" and message["role"] == "assistant" and message["model"] == MODEL
        assert message["usage"]["service_tier"] == "batch"
        assert message["usage"]["output_tokens"] <= REQUESTS[custom_id]["max_tokens"]
        if custom_id == "tool-forced":
            calls = [block for block in message["content"] if block["type"] == "tool_use"]
            assert [call["name"] for call in calls] == ["set_mood"], message
            assert calls[0]["input"]["mood"] in ("calm", "rowdy") and calls[0]["id"].startswith("toolu_")


def _comparable(message: dict[str, Any]) -> bytes:
    """The body with what differs between two runs of one request replaced: its id, tool_use ids, the batch's
    service tier, and how the prompt split between cached and not (the prefix cache's state); everything else,
    key order included, must be the same bytes."""
    usage = dict(message["usage"])
    prompt = usage.pop("input_tokens") + usage.pop("cache_read_input_tokens")
    usage.pop("service_tier")
    content = [{**block, "id": "toolu_"} if block["type"] == "tool_use" else block for block in message["content"]]
    return orjson.dumps({**message, "id": "msg_", "content": content, "usage": {"prompt": prompt, **usage}})


@pytest.mark.parametrize("custom_id", ["plain-13", "roleplay-0", "roleplay-11", "tool-8", "tool-forced"])
def test_a_succeeded_result_is_the_non_streaming_body_of_the_same_request(
    served: Served, ended: Ended, custom_id: str
) -> None:
    served.settle()
    response = httpx.post(
        served.url + "/v1/messages", json=REQUESTS[custom_id], headers={"x-api-key": served.keys["owner"]}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert _comparable(ended.results[custom_id]["result"]["message"]) == _comparable(response.json())


def test_an_errored_result_is_the_error_of_the_same_request(served: Served, ended: Ended) -> None:
    response = httpx.post(
        served.url + "/v1/messages", json=REQUESTS["too-long-2"], headers={"x-api-key": served.keys["owner"]}
    )
    assert response.status_code == 400
    assert ended.results["too-long-2"]["result"]["error"]["error"] == response.json()["error"]


def test_the_sdk_lists_it_and_another_key_gets_404(served: Served, ended: Ended) -> None:
    assert ended.batch.id in [batch.id for batch in served.client().messages.batches.list()]
    stranger = served.client("stranger").messages.batches
    for call in (stranger.retrieve, stranger.results, stranger.cancel, stranger.delete):
        with pytest.raises(anthropic.NotFoundError):
            call(ended.batch.id)
    assert ended.batch.id not in [batch.id for batch in stranger.list()]


def test_the_operator_cli_reads_it_from_the_store(served: Served, ended: Ended, tmp_path: Path) -> None:
    def cli(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with mock.patch.dict(os.environ, {"ROLECALL_DATA_DIR": str(served.data_dir)}), contextlib.redirect_stdout(out):
            return main(["batches", *args]), out.getvalue()

    code, out = cli("list")
    row = next(line.split() for line in out.splitlines() if line.startswith(ended.batch.id))
    assert code == 0 and row[1:8] == ["owner", "ended", "50", "45", "5", "0", "0"]
    code, out = cli("show", ended.batch.id)
    assert code == 0 and json.loads(out)["request_counts"] == ended.batch.request_counts.model_dump()
    target = tmp_path / "results.jsonl"
    assert cli("results", ended.batch.id, "--output", str(target))[0] == 0
    assert target.read_bytes() == ended.raw


def test_an_ended_batch_can_be_deleted(served: Served) -> None:
    client = served.client()
    batch = client.messages.batches.create(requests=[{"custom_id": "one", "params": REQUESTS["plain-0"]}])
    assert wait_until(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended", timeout=120)
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
