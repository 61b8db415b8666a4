"""Message Batches in the store: one row per batch, one per request ("item"), and the queries the desk and the
runner make, the same on SQLite and PostgreSQL.

An item is `pending`, then `running` (held by one runner until `lease_until`), then ends `succeeded`,
`errored`, `canceled` or `expired` with its result. Every change of state is one conditional UPDATE, so only
one party can make it: a runner claims an item only while it is pending (or its lease has lapsed: the runner
that held it is gone), and stores a result only while the lease is still its own. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`, so instances never wait on each other's claims; SQLite's transactions begin
IMMEDIATE (store/database.py), which serializes them.

The batch keeps its counts in columns, changed in the same transaction as its items. Reading them is one row,
also for a list page of 20 batches of 100,000 requests each (a GROUP BY over the items would read them all),
and the transaction that ends the last item ends the batch: no sweep needed to notice it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from rolecall.core.batches import BatchCounts, BatchRecord, BatchStatus, ResultType
from rolecall.store import schema
from rolecall.store.database import Database
from rolecall.store.ledger import LedgerRow
from rolecall.store.migrations import Migration

metadata = MetaData()

batches = Table(
    "batches",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),  # Caller.label of the key that created it
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("cancel_initiated_at", Double),
    # Kept counts (see the module's docstring): `processing` is every item not yet ended.
    Column("processing", BigInteger, nullable=False),
    Column("succeeded", BigInteger, nullable=False, server_default="0"),
    Column("errored", BigInteger, nullable=False, server_default="0"),
    Column("canceled", BigInteger, nullable=False, server_default="0"),
    Column("expired", BigInteger, nullable=False, server_default="0"),
    Index("batches_owner_created", "owner", "created_at", "id"),
    Index("batches_created", "created_at", "id"),
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", Text, nullable=False),
    Column("position", Integer, nullable=False),  # submission order, from 0
    Column("custom_id", Text, nullable=False),
    Column("params", Text, nullable=False),  # the Messages body as JSON
    Column("state", Text, nullable=False),  # pending | running | succeeded | errored | canceled | expired
    Column("result", Text),  # JSON: the Message (succeeded) or the error body (errored)
    Column("runner", Text),  # the runner holding (or that last held) it
    Column("lease_until", Double),  # while running: the runner's hold lapses then unless renewed
    Column("attempts", Integer, nullable=False, server_default="0"),  # claims so far (a crash makes one more)
    Column("queued_at", Double, nullable=False),  # the batch's created_at: older batches are claimed first
    PrimaryKeyConstraint("batch_id", "position"),
    Index("batch_items_claim", "state", "queued_at", "batch_id", "position"),
    Index("batch_items_lease", "state", "lease_until"),
)


def _create_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[batches, batch_items])


# The batches not ended, for the runner's look for work (`any_open`) and the sweep: one index probe each, however
# many ended batches the table keeps. Partial: it holds only the few open ones.
_OPEN_INDEX = "CREATE INDEX IF NOT EXISTS batches_open ON batches (expires_at) WHERE ended_at IS NULL"
_ANY_OPEN = "SELECT 1 FROM batches WHERE ended_at IS NULL LIMIT 1"


def _index_open(connection: Connection) -> None:
    connection.exec_driver_sql(_OPEN_INDEX)


BATCHES_MIGRATIONS: tuple[Migration, ...] = (
    Migration("batches", 1, "batches, batch_items", _create_tables),
    Migration("batches", 2, "batches_open: the batches not ended", _index_open),
)

ENDED_STATES: tuple[ResultType, ...] = ("succeeded", "errored", "canceled", "expired")
_INSERT_CHUNK = 1000  # items per INSERT statement


@dataclass(frozen=True, slots=True)
class ItemKey:
    batch_id: str
    position: int


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item a runner now holds: what it needs to run it."""

    key: ItemKey
    custom_id: str
    params: str
    owner: str
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredResult:
    position: int
    custom_id: str
    state: str
    result: str | None


def _record(row: Row[Any]) -> BatchRecord:
    counts = BatchCounts(row.processing, row.succeeded, row.errored, row.canceled, row.expired)
    status: BatchStatus = "in_progress"
    if row.ended_at is not None:
        status = "ended"
    elif row.cancel_initiated_at is not None:
        status = "canceling"
    return BatchRecord(
        row.id, row.owner, status, counts, row.created_at, row.expires_at, row.ended_at, row.cancel_initiated_at
    )


class BatchStore:
    """The batches' queries over one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(
        self, batch_id: str, owner: str, items: Sequence[tuple[str, str]], now: float, ttl: float
    ) -> BatchRecord:
        """Store a batch and its items (custom_id, params JSON) in one transaction."""
        async with self.database.transaction() as connection:
            row = {"id": batch_id, "owner": owner, "created_at": now, "expires_at": now + ttl}
            await connection.execute(insert(batches).values(**row, processing=len(items)))
            rows = [
                {"batch_id": batch_id, "position": i, "custom_id": custom_id, "params": params, "state": "pending"}
                | {"queued_at": now}
                for i, (custom_id, params) in enumerate(items)
            ]
            for start in range(0, len(rows), _INSERT_CHUNK):
                await connection.execute(insert(batch_items), rows[start : start + _INSERT_CHUNK])
            record = await self._get(connection, batch_id)
            assert record is not None  # inserted above, in this transaction
            return record

    async def get(self, batch_id: str) -> BatchRecord | None:
        async with self.database.reading() as connection:
            return await self._get(connection, batch_id)

    @staticmethod
    async def _get(connection: AsyncConnection, batch_id: str) -> BatchRecord | None:
        row = (await connection.execute(select(batches).where(batches.c.id == batch_id))).first()
        return None if row is None else _record(row)

    async def page(
        self, owner: str | None, limit: int, before: BatchRecord | None, after: BatchRecord | None
    ) -> tuple[list[BatchRecord], bool]:
        """Newest first. `after`: the page of batches older than it; `before`: of those newer (the ones next
        to it). The bool: whether more lie beyond the page in that direction."""
        order = tuple_(batches.c.created_at, batches.c.id)
        query = select(batches)
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        if after is not None:
            query = query.where(order < tuple_(after.created_at, after.id))
        if before is not None:
            query = query.where(order > tuple_(before.created_at, before.id))
        towards_newer = before is not None and after is None
        if towards_newer:
            query = query.order_by(batches.c.created_at.asc(), batches.c.id.asc())
        else:
            query = query.order_by(batches.c.created_at.desc(), batches.c.id.desc())
        async with self.database.reading() as connection:
            rows = (await connection.execute(query.limit(limit + 1))).all()
        records = [_record(row) for row in rows[:limit]]
        return (records[::-1] if towards_newer else records), len(rows) > limit

    async def cancel(self, batch_id: str, now: float) -> BatchRecord | None:
        """Begin canceling an in-progress batch: its pending items end `canceled` at once; it ends when no item
        runs any more. A batch already canceling or ended is left as it is."""
        async with self.database.transaction() as connection:
            began = await connection.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.cancel_initiated_at.is_(None), batches.c.ended_at.is_(None))
                .values(cancel_initiated_at=now)
            )
            if began.rowcount == 1:
                canceled = await connection.execute(
                    update(batch_items)
                    .where(batch_items.c.batch_id == batch_id, batch_items.c.state == "pending")
                    .values(state="canceled", runner=None, lease_until=None)
                )
                await _count(connection, batch_id, "canceled", canceled.rowcount, now)
            return await self._get(connection, batch_id)

    async def delete(self, batch_id: str) -> bool:
        """Remove an ended batch and its items; False if it is not (or no longer) there, or not ended."""
        async with self.database.transaction() as connection:
            gone = await connection.execute(
                delete(batches).where(batches.c.id == batch_id, batches.c.ended_at.is_not(None))
            )
            if gone.rowcount != 1:
                return False
            await connection.execute(delete(batch_items).where(batch_items.c.batch_id == batch_id))
            return True

    async def results(self, batch_id: str, after_position: int, limit: int) -> list[StoredResult]:
        """Up to `limit` items after `after_position`, in submission order."""
        query = (
            select(batch_items.c.position, batch_items.c.custom_id, batch_items.c.state, batch_items.c.result)
            .where(batch_items.c.batch_id == batch_id, batch_items.c.position > after_position)
            .order_by(batch_items.c.position)
            .limit(limit)
        )
        async with self.database.reading() as connection:
            return [StoredResult(*row) for row in (await connection.execute(query)).all()]

    async def claim(self, runner: str, now: float, lease: float, limit: int) -> list[ClaimedItem]:
        """Take up to `limit` items to run: items whose runner's lease lapsed first (their runner is gone), then
        pending ones of the oldest batches. Each is held by `runner` until `now + lease` unless renewed."""
        async with self.database.transaction() as connection:
            live = select(batches.c.id).where(
                batches.c.cancel_initiated_at.is_(None), batches.c.ended_at.is_(None), batches.c.expires_at > now
            )
            lapsed = (
                select(batch_items.c.batch_id, batch_items.c.position)
                .where(batch_items.c.state == "running", batch_items.c.lease_until < now)
                .where(batch_items.c.batch_id.in_(live))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            keys = [ItemKey(*row) for row in (await connection.execute(lapsed)).all()]
            if len(keys) < limit:
                pending = (
                    select(batch_items.c.batch_id, batch_items.c.position)
                    .where(batch_items.c.state == "pending", batch_items.c.batch_id.in_(live))
                    .order_by(batch_items.c.queued_at, batch_items.c.batch_id, batch_items.c.position)
                    .limit(limit - len(keys))
                    .with_for_update(skip_locked=True)
                )
                keys += [ItemKey(*row) for row in (await connection.execute(pending)).all()]
            claimed = []
            for key in keys:
                taken = await connection.execute(
                    update(batch_items)
                    .where(_is(key), _claimable(now))
                    .values(
                        state="running", runner=runner, lease_until=now + lease, attempts=batch_items.c.attempts + 1
                    )
                )
                if taken.rowcount == 1:
                    claimed.append(key)
            return await _claimed(connection, claimed)

    async def renew(self, runner: str, keys: Sequence[ItemKey], until: float) -> set[ItemKey]:
        """Extend this runner's leases; the keys it still holds (one it lost is being run by another)."""
        held = set()
        async with self.database.transaction() as connection:
            for key in keys:
                renewed = await connection.execute(
                    update(batch_items).where(_is(key), _held_by(runner)).values(lease_until=until)
                )
                if renewed.rowcount == 1:
                    held.add(key)
        return held

    async def release(self, runner: str, key: ItemKey) -> None:
        """Give an item back unfinished (this runner is stopping): pending again, for any runner to take."""
        async with self.database.transaction() as connection:
            await connection.execute(
                update(batch_items).where(_is(key), _held_by(runner)).values(state="pending", lease_until=None)
            )

    async def finish(
        self, runner: str, key: ItemKey, state: ResultType, result: str | None, ledger: LedgerRow | None, now: float
    ) -> Literal["lost", "stored", "ended"]:
        """Store an item's result, and its ledger row in the same transaction, if `runner` still holds it; the
        batch's counts change with it and, with its last item, it ends ("ended"). "lost": the lease was lost,
        nothing stored (another runner holds the item, or a cancel or expiry ended it)."""
        async with self.database.transaction() as connection:
            stored = await connection.execute(
                update(batch_items)
                .where(_is(key), _held_by(runner))
                .values(state=state, result=result, lease_until=None)
            )
            if stored.rowcount != 1:
                return "lost"
            if ledger is not None:
                await connection.execute(insert(schema.ledger).values(asdict(ledger)))
            return "ended" if await _count(connection, key.batch_id, state, 1, now) else "stored"

    async def sweep(self, now: float) -> list[str]:
        """End what no runner will: the items of a batch past its `expires_at` not yet ended (nor held by a live
        runner) become `expired`; the items of a canceling batch whose runner is gone (its lease lapsed) become
        `canceled`. The ids of the batches that ended."""
        async with self.database.transaction() as connection:
            due = select(batches.c.id, batches.c.cancel_initiated_at).where(
                batches.c.ended_at.is_(None),
                or_(batches.c.expires_at <= now, batches.c.cancel_initiated_at.is_not(None)),
            )
            ended = []
            for batch_id, canceling in (await connection.execute(due)).all():
                state = "canceled" if canceling is not None else "expired"
                changed = await connection.execute(
                    update(batch_items)
                    .where(batch_items.c.batch_id == batch_id, _claimable(now))
                    .values(state=state, runner=None, lease_until=None)
                )
                if await _count(connection, batch_id, state, changed.rowcount, now):
                    ended.append(batch_id)
            return ended

    async def any_open(self) -> bool:
        """Whether any batch has not ended (in progress or canceling): whether a runner has anything to claim,
        sweep or count. One probe of the `batches_open` index, on the connection the store keeps for polls
        (`Database.read_row`)."""
        return await self.database.read_row(_ANY_OPEN) is not None

    async def pending_count(self) -> int:
        """Items not yet started (for the gauge)."""
        query = select(func.count()).select_from(batch_items).where(batch_items.c.state == "pending")
        async with self.database.reading() as connection:
            return int((await connection.execute(query)).scalar_one())


def _is(key: ItemKey) -> Any:
    return and_(batch_items.c.batch_id == key.batch_id, batch_items.c.position == key.position)


def _held_by(runner: str) -> Any:
    return and_(batch_items.c.state == "running", batch_items.c.runner == runner)


def _claimable(now: float) -> Any:
    return or_(
        batch_items.c.state == "pending", and_(batch_items.c.state == "running", batch_items.c.lease_until < now)
    )


async def _count(connection: AsyncConnection, batch_id: str, state: str, items: int, now: float) -> bool:
    """Move `items` of a batch's count from processing to `state`, and end the batch if none is left
    processing. Whether it ended now."""
    if items:
        column = batches.c[state]
        await connection.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values({column: column + items, batches.c.processing: batches.c.processing - items})
        )
    ended = await connection.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.processing == 0, batches.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    return ended.rowcount == 1


async def _claimed(connection: AsyncConnection, keys: list[ItemKey]) -> list[ClaimedItem]:
    claimed = []
    for key in keys:
        row = (
            await connection.execute(
                select(batch_items.c.custom_id, batch_items.c.params, batch_items.c.attempts, batches.c.owner)
                .join(batches, batches.c.id == batch_items.c.batch_id)
                .where(_is(key))
            )
        ).one()
        claimed.append(ClaimedItem(key, row.custom_id, row.params, row.owner, row.attempts))
    return claimed


def clock() -> float:
    """The store's times: UTC epoch seconds."""
    return time.time()
