"""Admission control over HTTP: one slot, a queue of one. Beyond it 529 + retry-after before any
stream byte; a queued client that leaves never reaches the engine; slots and queue return to idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.engines.base import EngineInfo
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.real_checks import metric_sample
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.support.waiting import wait_until

BODY = {"model": "scripted", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def one_slot(data_dir: Path) -> Iterator[tuple[str, ScriptedEngine]]:
    engine = ScriptedEngine()
    engine.info = EngineInfo(context_window=4096, slots=1)
    registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
    settings = Settings(data_dir=data_dir, queue_length=1, queue_wait=1.5, ping_interval=0.2)
    with running_server(settings, registry=registry) as url:
        yield url, engine


def _gauges(url: str) -> tuple[float, float, float]:
    text = httpx.get(url + "/metrics").text
    return (
        metric_sample(text, "rolecall_admission_in_flight", 0.0, model="scripted"),
        metric_sample(text, "rolecall_admission_queued", 0.0, model="scripted"),
        metric_sample(text, "rolecall_shed_requests_total", 0.0, model="scripted"),
    )


def _hold_slot(url: str, release: threading.Event, seen: list) -> threading.Thread:
    """A stream that holds the only slot until `release` is set, then leaves."""

    def run() -> None:
        with httpx.stream("POST", url + "/v1/messages", json={**BODY, "stream": True}, timeout=30) as response:
            seen.append(response.status_code)
            for _ in response.iter_bytes():
                if release.is_set():
                    break

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_full_queue_is_shed_with_529_and_retry_after(one_slot: tuple[str, ScriptedEngine]) -> None:
    url, engine = one_slot
    engine.enqueue([TextChunk("busy"), 30.0, FinishChunk("stop")])
    release, seen = threading.Event(), []
    holder = _hold_slot(url, release, seen)
    assert wait_until(lambda: engine.active == 1)

    queued: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: queued.append(httpx.post(url + "/v1/messages", json=BODY, timeout=30)))
    waiter.start()
    assert wait_until(lambda: _gauges(url)[:2] == (1, 1)), "the second request should wait in the queue"

    for stream in (False, True):  # shed before the 200, whether or not a stream was asked for
        shed = httpx.post(url + "/v1/messages", json={**BODY, "stream": stream}, timeout=10)
        assert shed.status_code == 529 and shed.headers["content-type"] == "application/json"
        assert shed.headers["retry-after"] == "1" and shed.headers["x-should-retry"] == "true"
        assert shed.json()["error"] == {"type": "overloaded_error", "message": "Overloaded (1002)"}
    assert _gauges(url)[2] == 2

    release.set()  # the holder leaves: its slot goes to the queued request, which completes
    holder.join(10)
    waiter.join(10)
    assert seen == [200] and queued[0].status_code == 200
    assert queued[0].json()["content"][0]["text"] == "Hello from the scripted engine."
    assert wait_until(lambda: _gauges(url)[:2] == (0, 0)) and engine.active == 0


def test_waiting_longer_than_queue_wait_is_shed(one_slot: tuple[str, ScriptedEngine]) -> None:
    url, engine = one_slot
    engine.enqueue([TextChunk("busy"), 30.0, FinishChunk("stop")])
    release, seen = threading.Event(), []
    holder = _hold_slot(url, release, seen)
    assert wait_until(lambda: engine.active == 1)
    began = time.monotonic()
    response = httpx.post(url + "/v1/messages", json={**BODY, "stream": True}, timeout=10)
    assert response.status_code == 529 and response.headers["retry-after"]
    assert 1.4 < time.monotonic() - began < 5, "shed after queue_wait (1.5 s), not at once and not never"
    release.set()
    holder.join(10)
    assert wait_until(lambda: _gauges(url)[:2] == (0, 0)) and engine.active == 0


def test_a_queued_client_that_leaves_never_reaches_the_engine(one_slot: tuple[str, ScriptedEngine]) -> None:
    url, engine = one_slot
    engine.enqueue([TextChunk("busy"), 30.0, FinishChunk("stop")])
    release, seen = threading.Event(), []
    holder = _hold_slot(url, release, seen)
    assert wait_until(lambda: engine.active == 1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/messages", json=BODY, timeout=0.5)
    assert wait_until(lambda: _gauges(url)[1] == 0), "the abandoned waiter must leave the queue"
    release.set()
    holder.join(10)
    assert wait_until(lambda: _gauges(url)[:2] == (0, 0)) and engine.active == 0
    assert len(engine.requests) == 1, "the client that left while queued must never reach the engine"
    # The slot is free again: the next request is served at once.
    response = httpx.post(url + "/v1/messages", json={**BODY, "stream": True}, timeout=10)
    assert response.status_code == 200
    check_stream(response.content)
