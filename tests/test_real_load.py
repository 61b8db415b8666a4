"""Bounded load test on the bundled model (loopback): 128 streams at 64-way concurrency against 4 engine
slots and a queue of 24, from clients that retry a 529 after `retry-after` as the SDKs do (2 retries).
Every attempt either completes or is shed before its 200 with 529 + retry-after; no 5xx, no hang;
afterwards the admission counters and llama.cpp's slots are idle again.

The outcome counts and timings are printed (`pytest -s`); docs/reliability.md records a run."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.service.runtime import build_registry
from rolecall.settings import SEED_MODEL_NAMES, ModelConfig, Settings
from tests.real_checks import body, metric_sample
from tests.support.server import running_server
from tests.support.sse import check_stream

STREAMS, CONCURRENCY, SLOTS, QUEUE, RETRIES = 128, 64, 4, 24, 2
PROMPTS = ["Name a color.", "Say hi.", "Name a fruit.", "Count to three."]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmbeddedLlamaCpp]]:
    # One thread: llama.cpp's threads spin at each step's barrier, which on a shared 2-core machine turns a
    # 0.2 s request into tens of seconds; one thread per process keeps the test bounded there.
    registry = build_registry(
        [ModelConfig(id="smollm2-135m-instruct", aliases=SEED_MODEL_NAMES, context=4096, parallel=SLOTS, threads=1)]
    )
    engine = registry.models[0].engine
    assert isinstance(engine, EmbeddedLlamaCpp)
    settings = Settings(data_dir=tmp_path_factory.mktemp("load"), queue_length=QUEUE, queue_wait=30)
    with running_server(settings, registry=registry) as url:
        yield url, engine


async def _attempt(client: httpx.AsyncClient, index: int) -> float | None:
    """One stream: None if shed (529 + retry-after), else the seconds it took to complete."""
    payload = body(PROMPTS[index % len(PROMPTS)], max_tokens=8, stream=True, top_k=1)
    began = time.monotonic()
    async with client.stream("POST", "/v1/messages", json=payload) as response:
        raw = await response.aread()
    if response.status_code == 200:
        events = check_stream(raw)
        assert events[-1]["type"] == "message_stop", events[-1]
        return time.monotonic() - began
    assert response.status_code == 529, (response.status_code, raw[:300])
    assert response.headers["retry-after"] == "1" and response.headers["x-should-retry"] == "true"
    assert response.json()["error"]["type"] == "overloaded_error"
    return None


async def _one(client: httpx.AsyncClient, index: int) -> tuple[str, float]:
    """A client that behaves like the SDKs: on 529 it waits `retry-after`, then tries again (twice)."""
    began = time.monotonic()
    for attempt in range(RETRIES + 1):
        if await _attempt(client, index) is not None:
            return ("completed" if attempt == 0 else f"completed after {attempt} retries"), time.monotonic() - began
        if attempt < RETRIES:
            await asyncio.sleep(1.0)
    return "shed", time.monotonic() - began


async def _run(url: str) -> tuple[Counter, list[float], float]:
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def bounded(index: int) -> tuple[str, float]:
            async with limit:
                return await _one(client, index)

        began = time.monotonic()
        results = await asyncio.gather(*(bounded(i) for i in range(STREAMS)))
    outcomes = Counter(kind for kind, _ in results)
    completed = sorted(elapsed for kind, elapsed in results if kind.startswith("completed"))
    return outcomes, completed, time.monotonic() - began


@pytest.mark.timeout(300)
def test_128_streams_at_64_way_concurrency_complete_or_are_shed(loaded: tuple[str, EmbeddedLlamaCpp]) -> None:
    url, engine = loaded
    before = httpx.get(url + "/metrics").text
    outcomes, completed, wall = asyncio.run(_run(url))
    after = httpx.get(url + "/metrics").text

    assert sum(outcomes.values()) == STREAMS
    assert outcomes["completed"] >= SLOTS, "the first wave gets the slots"
    assert sum(n for kind, n in outcomes.items() if kind != "completed") > 0, "64 clients against 28 places: 529s"
    for status in ("500", "502", "503", "504"):
        assert metric_sample(
            after, "rolecall_requests_total", 0.0, route="/v1/messages", status=status
        ) == metric_sample(before, "rolecall_requests_total", 0.0, route="/v1/messages", status=status)
    shed = metric_sample(after, "rolecall_shed_requests_total", 0.0, model="smollm2-135m-instruct") - metric_sample(
        before, "rolecall_shed_requests_total", 0.0, model="smollm2-135m-instruct"
    )
    retried = {1: outcomes["completed after 1 retries"], 2: outcomes["completed after 2 retries"]}
    assert shed == retried[1] + 2 * retried[2] + (RETRIES + 1) * outcomes["shed"], "every 529 is counted"
    assert metric_sample(after, "rolecall_admission_in_flight", model="smollm2-135m-instruct") == 0
    assert metric_sample(after, "rolecall_admission_queued", model="smollm2-135m-instruct") == 0

    engine_url, key = engine.endpoint
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        slots = httpx.get(engine_url + "/slots", headers={"Authorization": f"Bearer {key}"}).json()
        if not any(slot["is_processing"] for slot in slots):
            break
        time.sleep(0.1)
    assert len(slots) == SLOTS and not any(slot["is_processing"] for slot in slots)

    p50 = completed[len(completed) // 2]
    p95 = completed[int(len(completed) * 0.95) - 1]
    print(
        f"\nload: {STREAMS} streams, {CONCURRENCY}-way, {SLOTS} slots, queue {QUEUE}: {dict(outcomes)}; "
        f"{shed:.0f} 529s in all, 0 5xx; wall {wall:.1f} s; "
        f"completed latency p50 {p50:.2f} s p95 {p95:.2f} s max {completed[-1]:.2f} s"
    )
