"""A message batch beside interactive traffic with two workers, as `rolecall serve --workers 2` runs them: the
batch runner lives in worker 1. Its request waits while interactive requests keep arriving on worker 2 and runs
once they stop; an interactive request on worker 2 stops the batch request still processing its prompt on worker
1, which runs again once the server is quiet; no slot is lost on the way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from rolecall.core.batches import BatchItem, BatchRecord, BatchResult
from rolecall.core.caller import ANONYMOUS
from rolecall.core.chunks import FinishChunk, TextChunk, UsageChunk
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.batches import BatchDesk
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import MIGRATIONS
from rolecall.settings import Settings
from rolecall.store.database import Database, database_url
from tests.support.server import running_server
from tests.support.waiting import wait_until
from tests.support.workers import CoordinatorThread, coordinator_thread

T = TypeVar("T")
BODY = {"model": "scripted", "max_tokens": 16, "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def _desk(url: str, work: Callable[[BatchDesk], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await Database.open(url, MIGRATIONS)
        try:
            return await work(BatchDesk.on(database))
        finally:
            await database.close()

    return asyncio.run(run())


def _record(url: str, batch_id: str) -> BatchRecord:
    return _desk(url, lambda desk: desk.get(None, batch_id))


def _results(url: str, batch_id: str) -> list[BatchResult]:
    async def read(desk: BatchDesk) -> list[BatchResult]:
        return [result async for result in desk.results(None, batch_id)]

    return _desk(url, read)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[CoordinatorThread, list[str], list[ScriptedEngine], str]]:
    """Two workers on one store (as `--workers 2` runs them; the batch runner is worker 1's): the coordinator,
    their URLs, their engines and the store's URL."""
    engines = [ScriptedEngine(), ScriptedEngine()]
    with coordinator_thread() as coordinator, ExitStack() as stack:
        urls = []
        for number, engine in enumerate(engines, 1):
            registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
            settings = Settings(data_dir=tmp_path, max_in_flight=4, batch_concurrency=1)
            urls.append(stack.enter_context(running_server(settings, registry, share=coordinator.share(number))))
        yield coordinator, urls, engines, database_url(None, tmp_path)


def test_a_batch_request_waits_while_interactive_requests_keep_arriving_on_worker_2(
    two_workers: tuple[CoordinatorThread, list[str], list[ScriptedEngine], str],
) -> None:
    coordinator, urls, engines, store = two_workers
    stop = threading.Event()

    def client() -> int:  # back to back, as a tool loop or a busy UI sends them
        answered = 0
        with httpx.Client(base_url=urls[1], timeout=10) as http:
            while not stop.is_set():
                answered += http.post("/v1/messages", json=BODY).status_code == 200
        return answered

    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(client) for _ in range(2)]
        try:
            assert wait_until(lambda: len(engines[1].requests) >= 2)
            _desk(store, lambda desk: desk.create(ANONYMOUS, "msgbatch_waits", [BatchItem("w0", BODY)]))
            assert wait_until(lambda: coordinator.background("scripted") == 1, 10), "the runner never asked"
            served = len(engines[1].requests)
            assert wait_until(lambda: len(engines[1].requests) >= served + 20, 10)
            assert not engines[0].requests, "the batch request started between interactive requests"
        finally:
            stop.set()
        assert all(answered.result() > 0 for answered in clients)
    assert wait_until(lambda: _record(store, "msgbatch_waits").status == "ended", 20, 0.1)  # quiet at last
    assert len(engines[0].requests) == 1
    assert wait_until(lambda: coordinator.counts("scripted") == (0, 0) and not coordinator.background("scripted"))


def test_an_interactive_request_on_worker_2_preempts_a_batch_request_in_its_prompt_on_worker_1(
    two_workers: tuple[CoordinatorThread, list[str], list[ScriptedEngine], str],
) -> None:
    coordinator, urls, engines, store = two_workers
    engines[0].enqueue([30.0, TextChunk("late"), FinishChunk("stop"), UsageChunk(3, 1)])  # a long prompt, say
    _desk(store, lambda desk: desk.create(ANONYMOUS, "msgbatch_workers", [BatchItem("p0", BODY)]))
    assert wait_until(lambda: engines[0].active == 1, 10), "worker 1's runner never started the batch request"
    assert coordinator.counts("scripted") == (1, 0)

    assert httpx.post(urls[1] + "/v1/messages", json=BODY, timeout=10).status_code == 200
    assert wait_until(lambda: _record(store, "msgbatch_workers").status == "ended", 20, 0.1)
    record = _record(store, "msgbatch_workers")
    assert (record.counts.succeeded, record.counts.errored) == (1, 0)
    result = _results(store, "msgbatch_workers")[0].body
    assert result is not None and result["content"][0]["text"] == "Hello from the scripted engine."  # run again
    assert (len(engines[0].requests), len(engines[1].requests)) == (2, 1)
    assert wait_until(lambda: coordinator.counts("scripted") == (0, 0))
