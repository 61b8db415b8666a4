"""Batches survive `kill -9` and share out across instances, with real `rolecall serve` processes on a store
and a scripted upstream that takes a moment per request (and counts every engine run):

- kill -9 mid-way, restart: every request ends with exactly one result, one ledger row each, and nothing
  that had completed before the kill runs again;
- two instances on one PostgreSQL: both take part, no request runs twice (the upstream saw each once)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from rolecall.core.batches import BatchItem, BatchRecord
from rolecall.core.caller import Caller, KeyLimits
from rolecall.service.batches import BatchDesk
from rolecall.service.runtime import MIGRATIONS
from rolecall.store.batches import batch_items
from rolecall.store.database import Database
from rolecall.store.keys import KeyStore
from rolecall.store.ledger import usage
from tests.support.serve_process import ServeProcess
from tests.support.upstream import ScriptedUpstream, Stream, serving
from tests.support.vllm_streams import text_reply
from tests.support.waiting import wait_until

T = TypeVar("T")
ITEMS = 200
OWNER = Caller("k", "batcher")


class SlowUpstream(ScriptedUpstream):
    """Every chat answer takes 40 ms: long enough that a kill lands with requests in flight."""

    async def _chat(self, send: Any, payload: dict[str, Any]) -> None:
        if not self.answers:
            self.answers.append(Stream([0.04, *text_reply("Hello there.")]))
        await super()._chat(send, payload)


@pytest.fixture
def upstream() -> Iterator[tuple[SlowUpstream, str]]:
    app = SlowUpstream()
    with serving(app) as url:
        yield app, url


class Instance(ServeProcess):
    """One `rolecall serve` process on the store."""

    def __init__(self, tmp_path: Path, name: str, store_url: str, upstream_url: str) -> None:
        config = tmp_path / f"{name}.toml"
        config.write_text(
            "batch_concurrency = 4\nbatch_lease = 2\n"
            f'[[models]]\nid = "up"\nengine = "openai"\nupstreams = ["{upstream_url}"]\n'
        )
        env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path), "ROLECALL_DATABASE_URL": store_url}
        env.pop("ROLECALL_API_KEYS", None)
        super().__init__(config, env, tmp_path / f"{name}.log")


class Store:
    """The store as the test reads it: one connection pool on one event loop for the whole test (a pool per
    look, migrations checked each time, would load the very database the servers are working on)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = asyncio.Runner()
        self._database = self._loop.run(Database.open(url, MIGRATIONS))

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        return self._loop.run(work(self._database))

    def close(self) -> None:
        self._loop.run(self._database.close())
        self._loop.close()


def _batch(store: Store, batch_id: str) -> BatchRecord:
    return store.run(lambda database: BatchDesk.on(database).get(None, batch_id))


def _items(store: Store, batch_id: str) -> dict[int, tuple[str, str | None, int, str | None]]:
    """Per position: state, result, attempts, runner."""

    async def read(database: Database) -> dict[int, tuple[str, str | None, int, str | None]]:
        columns = (batch_items.c.state, batch_items.c.result, batch_items.c.attempts, batch_items.c.runner)
        query = select(batch_items.c.position, *columns).where(batch_items.c.batch_id == batch_id)
        async with database.reading() as connection:
            return {row[0]: tuple(row[1:]) for row in (await connection.execute(query)).all()}  # type: ignore[misc]

    return store.run(read)


def _submit(store: Store, batch_id: str, marker: str) -> None:
    items = [
        BatchItem(f"{marker}-{i}", {"model": "up", "max_tokens": 8, "messages": [{"role": "user", "content": marker}]})
        for i in range(ITEMS)
    ]
    store.run(lambda database: BatchDesk.on(database).create(OWNER, batch_id, items))


def _ledger_rows(store: Store) -> int:
    groups = store.run(lambda database: usage(database, by="key", key=OWNER.label))
    return sum(group.requests for group in groups)


def _runs(upstream: SlowUpstream, marker: str) -> int:
    return sum(1 for chat in upstream.chats() if marker in str(chat.get("messages")))


def _ended(store: Store, batch_id: str, timeout: float) -> bool:
    return wait_until(lambda: _batch(store, batch_id).status == "ended", timeout, 0.05)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store with the key that owns the test's batch."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rolecall.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database("t_crash_" + uuid.uuid4().hex[:12])
    opened = Store(url)
    opened.run(lambda database: KeyStore(database).create(OWNER.label, KeyLimits()))
    yield opened
    opened.close()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # PostgreSQL's claims: the test below and the store's
def test_kill_9_mid_batch_loses_nothing_and_reruns_nothing(
    tmp_path: Path, store: Store, upstream: tuple[SlowUpstream, str]
) -> None:
    app, upstream_url = upstream
    _submit(store, "msgbatch_crash", "crash")
    instance = Instance(tmp_path, "one", store.url, upstream_url)
    try:
        instance.start()
        assert wait_until(lambda: _batch(store, "msgbatch_crash").counts.succeeded >= 40, 60, 0.02)
        instance.kill()
        before = _items(store, "msgbatch_crash")
        done_before = {position: item for position, item in before.items() if item[0] == "succeeded"}
        assert len(done_before) < ITEMS  # the kill came mid-way
        instance.start()
        assert _ended(store, "msgbatch_crash", 60), instance.log.read_text()[-2000:]
    finally:
        instance.stop()
    after = _items(store, "msgbatch_crash")
    assert sorted(after) == list(range(ITEMS))
    assert all(state == "succeeded" and result for state, result, _, _ in after.values())
    assert all(after[position] == item for position, item in done_before.items())  # not run again
    assert _batch(store, "msgbatch_crash").counts.succeeded == ITEMS
    assert _ledger_rows(store) == ITEMS  # one row per request, none twice
    assert _runs(app, "crash") >= ITEMS  # the ones cut off by the kill ran again


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_instances_share_a_batch_and_run_each_request_once(
    tmp_path: Path, store: Store, upstream: tuple[SlowUpstream, str]
) -> None:
    app, upstream_url = upstream
    instances = [Instance(tmp_path, name, store.url, upstream_url) for name in ("one", "two")]
    try:
        for instance in instances:
            instance.launch()
        for instance in instances:
            instance.wait_healthy()
        _submit(store, "msgbatch_shared", "shared")  # both are up: both find it within a poll
        assert _ended(store, "msgbatch_shared", 60)
    finally:
        for instance in instances:
            instance.stop()
    items = _items(store, "msgbatch_shared")
    assert all(state == "succeeded" and attempts == 1 for state, _, attempts, _ in items.values())
    runners = {runner.split(":")[1] for _, _, _, runner in items.values() if runner}
    assert runners == {str(instance.process.pid) for instance in instances if instance.process}  # both took part
    assert _runs(app, "shared") == ITEMS  # the engine ran each request once
    assert _ledger_rows(store) == ITEMS
