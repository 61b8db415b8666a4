"""The embedded engine's child process, for real: its port is useless without its key, and when it is
killed mid-stream the stream ends with an `error` event, /health turns 503, requests get 529 with a clear
message, and rolecall starts the engine again without restarting itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.service.registry import ModelRegistry
from rolecall.service.runtime import build_registry
from rolecall.settings import SEED_MODEL_NAMES, ModelConfig, Settings
from tests.real_checks import body, metric_sample
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.test_scripted_fuzz import HOSTILE, assert_well_answered, requests


def endless(max_tokens: int = 2000, marker: str = "", **extra: object) -> dict:
    """A greedy generation that runs to `max_tokens` on the bundled model: it repeats the prefilled word."""
    return {
        "model": "MiniMax-M2.7",
        "max_tokens": max_tokens,
        "top_k": 1,
        **extra,
        "messages": [
            {"role": "user", "content": f"{marker}Repeat the word fox forever."},
            {"role": "assistant", "content": "fox fox fox fox fox fox fox fox fox fox fox fox"},
        ],
    }


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmbeddedLlamaCpp]]:
    registry: ModelRegistry = build_registry(
        [ModelConfig(id="smollm2-135m-instruct", aliases=SEED_MODEL_NAMES, context=4096, parallel=2, threads=1)]
    )
    engine = registry.models[0].engine
    assert isinstance(engine, EmbeddedLlamaCpp)
    settings = Settings(data_dir=tmp_path_factory.mktemp("faults"))
    with running_server(settings, registry=registry) as url:
        yield url, engine


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
        ("POST", "/completion", {"prompt": "hi", "n_predict": 4}),
        ("POST", "/tokenize", {"content": "hi"}),
        ("POST", "/apply-template", {"messages": [{"role": "user", "content": "hi"}]}),
        ("GET", "/slots", None),
        ("GET", "/props", None),
    ],
)
def test_engine_port_refuses_requests_without_its_key(
    engine_server: tuple[str, EmbeddedLlamaCpp], method: str, path: str, payload: dict | None
) -> None:
    _, engine = engine_server
    url, key = engine.endpoint
    assert httpx.request(method, url + path, json=payload, timeout=30).status_code == 401
    wrong = httpx.request(method, url + path, json=payload, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    right = httpx.request(method, url + path, json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert right.status_code == 200, right.text


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_on_the_real_engine(engine_server: tuple[str, EmbeddedLlamaCpp], name: str) -> None:
    """The scripted engine serialises nothing; the real one does (templates, JSON to llama.cpp)."""
    url, _ = engine_server
    response = httpx.post(
        url + "/v1/messages", content=HOSTILE[name], timeout=60, headers={"content-type": "application/json"}
    )
    assert_well_answered(response)


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(generated=requests())
def test_generated_requests_on_the_real_engine(engine_server: tuple[str, EmbeddedLlamaCpp], generated: dict) -> None:
    url, _ = engine_server
    if isinstance(generated.get("max_tokens"), int) and generated["max_tokens"] > 0:
        generated["max_tokens"] = 4  # keep the real engine's work tiny
    response = httpx.post(
        url + "/v1/messages",
        content=json.dumps(generated).encode(),
        timeout=60,
        headers={"content-type": "application/json"},
    )
    assert_well_answered(response)


def _admission(url: str) -> list[float]:
    """[requests holding a slot, requests queued]."""
    metrics = httpx.get(url + "/metrics").text
    return [
        metric_sample(metrics, name, 0.0, model="smollm2-135m-instruct")
        for name in ("rolecall_admission_in_flight", "rolecall_admission_queued")
    ]


def _idle(url: str, engine: EmbeddedLlamaCpp) -> bool:
    """No request held or queued by rolecall, none in flight but this one, every llama.cpp slot idle."""
    counts = _admission(url)
    metrics = httpx.get(url + "/metrics").text
    engine_url, key = engine.endpoint
    slots = httpx.get(engine_url + "/slots", headers={"Authorization": f"Bearer {key}"}).json()
    in_flight = metric_sample(metrics, "rolecall_in_flight_requests")
    return counts == [0, 0] and in_flight == 1 and not any(slot["is_processing"] for slot in slots)


async def _leave_at(url: str, point: str, release: asyncio.Event | None = None) -> None:
    """Open a long generation and disconnect at `point` (mid-stream: once `release` is set)."""
    payload = endless(stream=point != "non-stream")
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if point in ("queued", "non-stream"):  # no byte comes before admission, none before the end
            with contextlib.suppress(httpx.ReadTimeout):
                await client.post("/v1/messages", json=payload, timeout=httpx.Timeout(60, read=1.0))
                raise AssertionError(f"{point}: the request should still have been waiting")
            return
        async with client.stream("POST", "/v1/messages", json=payload) as response:
            assert response.status_code == 200
            if point == "after headers":
                return
            seen = b""
            async for chunk in response.aiter_bytes():
                seen += chunk
                if seen.count(b"content_block_delta") >= 5 and (release is None or release.is_set()):
                    return


def test_clients_leaving_at_any_point_free_slots_queue_and_tasks(engine_server: tuple[str, EmbeddedLlamaCpp]) -> None:
    """Two slots: two streams take them, two more requests wait in the queue and leave from it, then the
    streams leave mid-stream; one more leaves right after the headers, one before its JSON body. Afterwards
    rolecall holds nothing and every llama.cpp slot is idle."""
    url, engine = engine_server

    async def scenario() -> None:
        release = asyncio.Event()
        holders = [asyncio.create_task(_leave_at(url, "mid-stream", release)) for _ in range(2)]
        while _admission(url) != [2, 0]:  # both slots taken
            await asyncio.sleep(0.05)
        await asyncio.gather(_leave_at(url, "queued"), _leave_at(url, "queued"))
        release.set()
        await asyncio.gather(*holders)
        await asyncio.gather(_leave_at(url, "after headers"), _leave_at(url, "non-stream"))

    asyncio.run(scenario())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _idle(url, engine):
        time.sleep(0.1)
    assert _idle(url, engine), "a request that left still holds a slot, a queue place or a task"


def _stream_then_kill(url: str, pid: int) -> bytes:
    """Read a long stream; kill the engine process once text is flowing; return all the bytes."""
    raw = b""
    payload = endless(stream=True)
    with httpx.stream("POST", url + "/v1/messages", json=payload, timeout=60) as response:
        assert response.status_code == 200
        killed = False
        for chunk in response.iter_bytes():
            raw += chunk
            if not killed and raw.count(b"content_block_delta") >= 3:
                os.kill(pid, signal.SIGKILL)
                killed = True
    return raw


def test_killed_engine_ends_the_stream_reports_unhealthy_and_is_restarted(
    engine_server: tuple[str, EmbeddedLlamaCpp],
) -> None:
    url, engine = engine_server
    first_pid = engine.pid
    assert first_pid is not None and httpx.get(url + "/health").status_code == 200

    events = check_stream(_stream_then_kill(url, first_pid))
    assert events[-1]["type"] == "error", "a stream cut by the engine's death must end with an error event"

    # While the engine is down: /health says so, and requests are shed with 529 + retry-after.
    unhealthy = refused = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (unhealthy is None or refused is None):
        health = httpx.get(url + "/health", timeout=10)
        if health.status_code == 503:
            unhealthy = health.json()
            response = httpx.post(url + "/v1/messages", json=body("hi", max_tokens=4), timeout=30)
            if response.status_code == 529:
                refused = response
        elif engine.pid != first_pid and engine.restarts:
            break  # already back: too quick to observe the gap
        time.sleep(0.01)
    assert unhealthy == {"status": "unavailable", "models": {"smollm2-135m-instruct": "unavailable"}}
    assert refused is not None, "a request while the engine is down must get 529"
    assert refused.headers["retry-after"] and refused.headers["x-should-retry"] == "true"
    error = refused.json()["error"]
    assert error["type"] == "overloaded_error" and "restarted" in error["message"]

    # The engine comes back in a new process; rolecall itself never stopped.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and httpx.get(url + "/health", timeout=10).status_code != 200:
        time.sleep(0.1)
    assert httpx.get(url + "/health").status_code == 200
    assert engine.pid != first_pid and engine.restarts == 1
    assert not Path(f"/proc/{first_pid}").exists() or open(f"/proc/{first_pid}/stat").read().split()[2] == "Z"
    response = httpx.post(url + "/v1/messages", json=body("Say hi.", max_tokens=8), timeout=60)
    assert response.status_code == 200 and response.json()["usage"]["output_tokens"] >= 1
