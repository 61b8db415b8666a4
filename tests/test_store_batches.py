"""The batches' store on both real backends: create, read, page, cancel, results, and the runner's claims,
leases and results, which only one party can win, also with two "instances" (two connection pools) on one
database claiming at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rolecall.core.batches import BatchItem
from rolecall.core.caller import Caller
from rolecall.core.errors import InvalidRequest, NotFound
from rolecall.service.batches import BatchDesk
from rolecall.service.runtime import MIGRATIONS
from rolecall.store.batches import BatchStore, ItemKey
from rolecall.store.database import Database, database_url
from rolecall.store.ledger import LedgerRow, rows_for
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0
ALICE, BOB = Caller("aaaa", "alice"), Caller("bbbb", "bob")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return database_url(None, tmp_path / "state")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database("t_batches_" + uuid.uuid4().hex[:12])  # claims see every batch: one each


@pytest.fixture
async def databases(url: str) -> AsyncIterator[list[Database]]:
    """Two connection pools on one database, as two rolecall instances have."""
    opened = [await Database.open(url, MIGRATIONS) for _ in range(2)]
    try:
        yield opened
    finally:
        for database in opened:
            await database.close()


def _items(count: int) -> list[BatchItem]:
    return [BatchItem(f"req-{i}", {"model": "m", "max_tokens": 4, "messages": [], "n": i}) for i in range(count)]


async def test_a_batch_is_its_owners_alone(databases: list[Database]) -> None:
    desk = BatchDesk(BatchStore(databases[0]), now=lambda: NOW)
    created = await desk.create(ALICE, "msgbatch_a", _items(3))
    assert (created.status, created.counts.processing, created.owner) == ("in_progress", 3, "alice")
    assert created.expires_at == NOW + 24 * 3600
    assert await desk.get(None, "msgbatch_a") == created  # the operator sees it
    for operation in (desk.get(BOB, "msgbatch_a"), desk.cancel(BOB, "msgbatch_a"), desk.delete(BOB, "msgbatch_a")):
        with pytest.raises(NotFound):
            await operation
    with pytest.raises(NotFound):
        await anext(desk.results(BOB, "msgbatch_a"))
    with pytest.raises(InvalidRequest, match="still in_progress; results are available once it has ended"):
        await anext(desk.results(ALICE, "msgbatch_a"))
    with pytest.raises(InvalidRequest, match="still in_progress"):
        await desk.delete(ALICE, "msgbatch_a")


async def test_pages_newest_first_both_ways(databases: list[Database]) -> None:
    clock = iter(range(100))
    desk = BatchDesk(BatchStore(databases[0]), now=lambda: NOW + next(clock))
    ids = [f"msgbatch_{i:02d}" for i in range(7)]
    for batch_id in ids:
        await desk.create(ALICE, batch_id, _items(1))
    await desk.create(BOB, "msgbatch_bob", _items(1))
    newest = ids[::-1]
    page, more = await desk.page(ALICE, limit=3, before_id=None, after_id=None)
    assert ([r.id for r in page], more) == (newest[:3], True)
    page, more = await desk.page(ALICE, limit=3, before_id=None, after_id=newest[5])
    assert ([r.id for r in page], more) == (newest[6:], False)
    page, more = await desk.page(ALICE, limit=2, before_id=newest[4], after_id=None)
    assert ([r.id for r in page], more) == (newest[2:4], True)  # the two next to it, still newest first
    everyone, _ = await desk.page(None, limit=20, before_id=None, after_id=None)
    assert [r.id for r in everyone] == ["msgbatch_bob", *newest]
    with pytest.raises(InvalidRequest, match="after_id: no message batch with id 'msgbatch_bob'"):
        await desk.page(ALICE, limit=3, before_id=None, after_id="msgbatch_bob")


async def test_two_claimers_one_winner_per_item(databases: list[Database]) -> None:
    stores = [BatchStore(database) for database in databases]
    await BatchDesk(stores[0], now=lambda: NOW).create(ALICE, "msgbatch_race", _items(40))

    async def claimer(number: int) -> list[int]:
        won: list[int] = []
        while claimed := await stores[number % 2].claim(f"runner-{number}", NOW, 30, 3):
            won += [item.key.position for item in claimed]
        return won

    results = await asyncio.gather(*(claimer(n) for n in range(4)))
    positions = sorted(p for won in results for p in won)
    assert positions == list(range(40))  # every item claimed, none twice
    assert await stores[0].claim("late", NOW, 30, 5) == []  # every lease is live


async def test_a_lapsed_lease_passes_on_and_only_the_holder_stores(databases: list[Database]) -> None:
    store = BatchStore(databases[0])
    await BatchDesk(store, now=lambda: NOW).create(ALICE, "msgbatch_lease", _items(2))
    first = await store.claim("a", NOW, 10, 1)
    assert [c.key.position for c in first] == [0] and first[0].attempts == 1 and first[0].owner == "alice"
    key = first[0].key
    assert await store.renew("a", [key], NOW + 20) == {key}
    assert [c.key.position for c in await store.claim("b", NOW + 15, 10, 1)] == [1]  # 0's lease still live
    again = await store.claim("c", NOW + 21, 10, 5)  # "a" died: its item passes on, once more counted
    assert [(c.key.position, c.attempts) for c in again] == [(0, 2)]
    assert await store.finish("a", key, "succeeded", '{"late": true}', None, NOW + 22) == "lost"
    assert await store.renew("a", [key], NOW + 40) == set()
    row = LedgerRow(NOW, "req_item0", "alice", "anthropic", "m", "m", 3, 0, 2, "end_turn", 200, 5.0)
    assert await store.finish("c", key, "succeeded", '{"n": 0}', row, NOW + 23) == "stored"
    assert await store.finish("c", key, "succeeded", '{"n": 0}', row, NOW + 23) == "lost"  # once
    assert [r.request_id for r in await rows_for(databases[1], ["req_item0"])] == ["req_item0"]
    last = ItemKey("msgbatch_lease", 1)
    assert await store.finish("b", last, "errored", '{"type": "error"}', None, NOW + 24) == "ended"
    desk = BatchDesk(store)
    ended = await desk.get(ALICE, "msgbatch_lease")
    assert (ended.status, ended.ended_at, ended.counts.succeeded, ended.counts.errored) == ("ended", NOW + 24, 1, 1)
    results = [(r.custom_id, r.type, r.body) async for r in desk.results(ALICE, "msgbatch_lease")]
    assert results == [("req-0", "succeeded", {"n": 0}), ("req-1", "errored", {"type": "error"})]
    await desk.delete(ALICE, "msgbatch_lease")
    with pytest.raises(NotFound):
        await desk.get(ALICE, "msgbatch_lease")


async def test_cancel_ends_pending_at_once_and_the_batch_with_its_last_running_item(databases: list[Database]) -> None:
    store, elsewhere = BatchStore(databases[0]), BatchStore(databases[1])  # `any_open`: the runner's idle look
    desk = BatchDesk(store, now=lambda: NOW)
    assert not await elsewhere.any_open()
    await desk.create(ALICE, "msgbatch_cancel", _items(5))
    assert await elsewhere.any_open()
    running = await store.claim("a", NOW, 30, 2)
    canceling = await desk.cancel(ALICE, "msgbatch_cancel")
    assert await elsewhere.any_open(), "canceling: its running items still end (or their runner's lease lapses)"
    assert (canceling.status, canceling.cancel_initiated_at, canceling.counts.canceled) == ("canceling", NOW, 3)
    assert await desk.cancel(ALICE, "msgbatch_cancel") == canceling  # idempotent
    assert await store.claim("b", NOW, 30, 5) == []  # nothing more starts
    assert await store.finish("a", running[0].key, "succeeded", "{}", None, NOW + 1) == "stored"
    assert await store.sweep(NOW + 2) == []  # the other's lease is live: it may still finish
    assert await store.sweep(NOW + 31) == ["msgbatch_cancel"]  # its runner is gone: canceled
    assert not await elsewhere.any_open()
    ended = await desk.get(ALICE, "msgbatch_cancel")
    assert (ended.status, ended.counts.succeeded, ended.counts.canceled, ended.counts.processing) == ("ended", 1, 4, 0)
    types = [r.type async for r in desk.results(None, "msgbatch_cancel")]
    assert types == ["succeeded", "canceled", "canceled", "canceled", "canceled"]


async def test_items_not_ended_in_24_hours_expire(databases: list[Database]) -> None:
    store = BatchStore(databases[0])
    desk = BatchDesk(store, now=lambda: NOW)
    await desk.create(ALICE, "msgbatch_old", _items(3))
    held = await store.claim("a", NOW, 30, 1)
    assert await store.pending_count() == 2
    assert await store.sweep(NOW + 24 * 3600 - 1) == []
    assert await store.claim("b", NOW + 24 * 3600, 30, 5) == []  # an expired batch starts nothing more
    assert await store.renew("a", [held[0].key], NOW + 24 * 3600 + 30)  # its runner is alive
    assert await store.sweep(NOW + 24 * 3600) == []  # the others expired; the held one's lease is live
    assert await store.pending_count() == 0
    assert await store.finish("a", held[0].key, "succeeded", "{}", None, NOW + 24 * 3600 + 1) == "ended"
    ended = await desk.get(ALICE, "msgbatch_old")
    assert (ended.status, ended.counts.succeeded, ended.counts.expired) == ("ended", 1, 2)
