"""The batch runner inside a real server on the scripted engine: a batch created in the store runs through the
same pipeline as `POST /v1/messages` (results byte-for-byte its non-streaming body, `service_tier` "batch"),
failures at run time are `errored` results, each run request has its one ledger row, a cancel mid-way ends
with the rest `canceled`, and a key revoked meanwhile errors the rest with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest

from rolecall.core.batches import BatchItem, BatchRecord, BatchResult
from rolecall.core.caller import Caller, KeyLimits
from rolecall.core.chunks import FinishChunk, TextChunk, UsageChunk
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.batches import BatchDesk
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import MIGRATIONS
from rolecall.settings import Settings
from rolecall.store.database import Database, database_url
from rolecall.store.keys import KeyStore
from rolecall.store.ledger import usage
from tests.support.server import running_server
from tests.support.waiting import wait_until

T = TypeVar("T")


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, engine: ScriptedEngine) -> Iterator[tuple[str, str, str]]:
    """A server with a store key "alice"; its URL, the store's URL and alice's secret."""
    data = tmp_path_factory.mktemp("batches")
    store_url = database_url(None, data)
    secret = _on(store_url, lambda db: KeyStore(db).create("alice", KeyLimits()))[1]
    registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
    settings = Settings(data_dir=data, batch_concurrency=2, batch_lease=3)
    with running_server(settings, registry=registry) as url:
        yield url, store_url, secret


def _on(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await Database.open(url, MIGRATIONS)
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


def _desk(url: str, work: Callable[[BatchDesk], Awaitable[T]]) -> T:
    return _on(url, lambda database: work(BatchDesk.on(database)))


def _results(url: str, batch_id: str) -> list[BatchResult]:
    async def read(desk: BatchDesk) -> list[BatchResult]:
        return [result async for result in desk.results(None, batch_id)]

    return _desk(url, read)


def _ended(url: str, batch_id: str, timeout: float = 20) -> BatchRecord:
    assert wait_until(lambda: _desk(url, lambda d: d.get(None, batch_id)).status == "ended", timeout, 0.1)
    return _desk(url, lambda d: d.get(None, batch_id))


def _body(text: str, model: str = "scripted", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": text}], **extra}


ALICE = Caller("k", "alice")


def _ended_items(url: str, secret: str) -> dict[str, float]:
    """`rolecall_batch_items_total` by result, from /metrics."""
    text = httpx.get(url + "/metrics", headers={"x-api-key": secret}).text
    prefix = 'rolecall_batch_items_total{result="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_a_batch_runs_as_its_interactive_requests_would(served: tuple[str, str, str]) -> None:
    url, store_url, secret = served
    before = _ended_items(url, secret)
    items = [BatchItem(f"r{i}", _body(f"say {i}", temperature=0)) for i in range(12)]
    items.append(BatchItem("unknown-model", _body("hi", model="no-such-model")))
    _desk(store_url, lambda desk: desk.create(ALICE, "msgbatch_plain", items))
    record = _ended(store_url, "msgbatch_plain")

    def counted() -> dict[str, float]:  # the runner counts each request just after storing it
        after = _ended_items(url, secret)
        return {result: after.get(result, 0) - before.get(result, 0) for result in ("succeeded", "errored")}

    assert wait_until(lambda: counted() == {"succeeded": 12, "errored": 1}, 5), counted()
    assert (record.counts.succeeded, record.counts.errored, record.counts.processing) == (12, 1, 0)
    results = _results(store_url, "msgbatch_plain")
    assert [r.custom_id for r in results] == [item.custom_id for item in items]  # submission order
    interactive = httpx.post(url + "/v1/messages", json=items[0].params, headers={"x-api-key": secret}).json()
    first = results[0].body
    assert first is not None and first["usage"].pop("service_tier") == "batch"
    assert {**first, "id": "-"} == {**interactive, "id": "-"} | {"usage": first["usage"]}
    assert interactive["usage"]["service_tier"] == "standard"
    error = results[-1].body
    assert results[-1].type == "errored" and error is not None
    assert error["error"]["type"] == "not_found_error" and "no-such-model" in error["error"]["message"]
    assert error["request_id"].startswith("req_")
    groups = _on(store_url, lambda db: usage(db, by="key", key="alice"))
    assert sum(group.requests for group in groups) == 13 + 1  # one row per batch request, one interactive


def test_cancel_mid_way_ends_the_rest_canceled(served: tuple[str, str, str], engine: ScriptedEngine) -> None:
    _, store_url, _ = served
    for _ in range(2):  # the two that start (batch_concurrency) take a while
        engine.enqueue([0.5, TextChunk("slow"), FinishChunk("stop"), UsageChunk(3, 1)])
    items = [BatchItem(f"c{i}", _body("hello")) for i in range(10)]
    _desk(store_url, lambda desk: desk.create(ALICE, "msgbatch_cancel", items))
    assert wait_until(lambda: engine.active == 2, 10)
    canceling = _desk(store_url, lambda desk: desk.cancel(ALICE, "msgbatch_cancel"))
    assert (canceling.status, canceling.counts.canceled, canceling.counts.processing) == ("canceling", 8, 2)
    record = _ended(store_url, "msgbatch_cancel")
    assert (record.counts.succeeded, record.counts.canceled) == (2, 8)
    results = _results(store_url, "msgbatch_cancel")
    assert [r.type for r in results] == ["succeeded"] * 2 + ["canceled"] * 8
    assert results[0].body is not None and results[0].body["content"][0]["text"] == "slow"


def test_a_key_revoked_meanwhile_errors_the_rest(served: tuple[str, str, str], engine: ScriptedEngine) -> None:
    _, store_url, _ = served
    _on(store_url, lambda db: KeyStore(db).create("bob", KeyLimits()))
    for _ in range(2):  # running while the key is revoked; the others start after every instance knows
        engine.enqueue([1.5, TextChunk("slow"), FinishChunk("stop"), UsageChunk(3, 1)])
    items = [BatchItem(f"b{i}", _body("hello")) for i in range(6)]
    _desk(store_url, lambda desk: desk.create(Caller("k", "bob"), "msgbatch_bob", items))
    assert wait_until(lambda: engine.active == 2, 10)
    assert _on(store_url, lambda db: KeyStore(db).revoke("bob"))
    record = _ended(store_url, "msgbatch_bob")
    assert (record.counts.succeeded, record.counts.errored) == (2, 4)
    error = _results(store_url, "msgbatch_bob")[-1].body
    assert error is not None and error["error"]["type"] == "authentication_error"
    assert "this API key (bob) was revoked" in error["error"]["message"]


def test_an_interactive_request_preempts_a_batch_request_in_its_prefill(
    served: tuple[str, str, str], engine: ScriptedEngine
) -> None:
    url, store_url, secret = served
    engine.enqueue([5.0, TextChunk("late"), FinishChunk("stop"), UsageChunk(3, 1)])  # a long prompt, say
    _desk(store_url, lambda desk: desk.create(ALICE, "msgbatch_preempt", [BatchItem("p0", _body("batch"))]))
    assert wait_until(lambda: engine.active == 1, 10)
    runs = len(engine.requests)
    reply = httpx.post(url + "/v1/messages", json=_body("interactive"), headers={"x-api-key": secret}, timeout=10)
    assert reply.status_code == 200
    record = _ended(store_url, "msgbatch_preempt")  # it ran again once the server was quiet
    assert (record.counts.succeeded, record.counts.errored) == (1, 0)
    result = _results(store_url, "msgbatch_preempt")[0].body
    assert result is not None and result["content"][0]["text"] == "Hello from the scripted engine."
    assert len(engine.requests) == runs + 2  # the interactive request and the batch request's second run


def test_a_key_at_its_limit_makes_the_batch_request_wait_not_fail(
    served: tuple[str, str, str], engine: ScriptedEngine
) -> None:
    url, store_url, _ = served
    secret = _on(store_url, lambda db: KeyStore(db).create("carol", KeyLimits(concurrency=1)))[1]
    headers = {"x-api-key": secret}
    assert wait_until(lambda: httpx.get(url + "/v1/models", headers=headers).status_code == 200, 5)
    engine.enqueue([1.5, TextChunk("busy"), FinishChunk("stop"), UsageChunk(3, 1)])
    with ThreadPoolExecutor(1) as pool:
        interactive = pool.submit(httpx.post, url + "/v1/messages", json=_body("hold"), headers=headers, timeout=10)
        assert wait_until(lambda: engine.active == 1, 10)  # carol's one request at a time is taken
        _desk(store_url, lambda desk: desk.create(Caller("k", "carol"), "msgbatch_carol", [BatchItem("c", _body("x"))]))
        assert interactive.result().status_code == 200
    record = _ended(store_url, "msgbatch_carol")
    assert (record.counts.succeeded, record.counts.errored) == (1, 0)  # refused at first (429), then it ran
