"""What the batch runner asks the store while there is no batch work: a real server on the scripted engine,
with a spy on its `BatchStore` counting the queries. Idle, each look is the one cheap read (`any_open`), never a
claim, sweep or count; a batch stored by another instance (its own connection pool: no wake-up here) still starts
at the runner's next look, and once it has ended the runner is back to the cheap read alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolecall.core.batches import BatchItem
from rolecall.core.caller import ANONYMOUS
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.batches import BatchDesk
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import MIGRATIONS
from rolecall.settings import Settings
from rolecall.store.batches import BatchStore
from rolecall.store.database import Database, database_url
from tests.support.server import running_server
from tests.support.waiting import wait_until

SPIED = ("any_open", "claim", "sweep", "pending_count")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every call the server's runner makes to these BatchStore queries (the server runs in this process)."""
    counted: Counter[str] = Counter()
    for name in SPIED:
        query = getattr(BatchStore, name)

        async def spy(self: BatchStore, *args: Any, query_: Any = query, name_: str = name) -> Any:
            counted[name_] += 1
            return await query_(self, *args)

        monkeypatch.setattr(BatchStore, name, spy)
    return counted


@pytest.fixture
def served(tmp_path: Path, calls: Counter[str]) -> Iterator[str]:
    """A server on the scripted engine (no keys: batches are anonymous); the store's URL."""
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    with running_server(Settings(data_dir=tmp_path, batch_lease=2), registry=registry):
        yield database_url(None, tmp_path)


def _status(store_url: str, batch_id: str, create: bool = False) -> str:
    """Another instance's view of the store (a connection pool of its own); it creates the batch if asked."""

    async def look() -> str:
        database = await Database.open(store_url, MIGRATIONS)
        try:
            desk = BatchDesk.on(database)
            if create:
                body = {"model": "scripted", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
                await desk.create(ANONYMOUS, batch_id, [BatchItem(f"r{i}", body) for i in range(3)])
            return (await desk.get(None, batch_id)).status
        finally:
            await database.close()

    return asyncio.run(look())


def test_an_idle_runner_only_reads_whether_a_batch_is_open(served: str, calls: Counter[str]) -> None:
    # The lease is 2 s: a sweep would be due every second. Three looks span at least two seconds.
    assert wait_until(lambda: calls["any_open"] >= 3, timeout=20)
    assert (calls["claim"], calls["sweep"], calls["pending_count"]) == (0, 0, 0)

    assert _status(served, "msgbatch_elsewhere", create=True) == "in_progress"
    assert wait_until(lambda: _status(served, "msgbatch_elsewhere") == "ended", timeout=20), "never picked up"
    assert calls["claim"] >= 1 and calls["sweep"] >= 1

    claims, looks = calls["claim"], calls["any_open"]
    assert wait_until(lambda: calls["any_open"] >= looks + 2, timeout=20)
    assert calls["claim"] == claims, "nothing open any more: back to the cheap read alone"
