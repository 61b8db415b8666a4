"""The usage ledger: one row per request, written by one task that commits the rows of concurrent requests
together (group commit), and the sums `rolecall usage` and `GET /admin/usage` report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select

from rolecall.store import schema
from rolecall.store.database import Database

log = logging.getLogger("rolecall.ledger")

_BATCH = 500  # rows per transaction at most


@dataclass(frozen=True, slots=True)
class LedgerRow:
    at: float  # epoch seconds when the request arrived
    request_id: str
    key: str | None  # Caller.label; None when the request named no valid key
    door: str
    model_asked: str | None
    model_served: str | None
    input_tokens: int  # prompt tokens computed, not read from the cache (Anthropic's input_tokens)
    cached_tokens: int
    output_tokens: int
    stop_reason: str | None
    status: int
    latency_ms: float


class LedgerWriter:
    """`write(row)` returns once the row is committed. Rows queued while a commit runs go together in the
    next one, so N concurrent requests cost about one commit, not N."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[tuple[LedgerRow, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")

    def submit(self, row: LedgerRow) -> asyncio.Future[None]:
        """Queue `row`; the future is done when it is committed (or failed to be)."""
        if self._closing or self._task is None:
            raise RuntimeError("the ledger writer is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, done))
        self._wake.set()
        return done

    async def write(self, row: LedgerRow) -> None:
        """Queue `row` and wait for its commit. A cancelled waiter leaves the row queued: it is still written."""
        await asyncio.shield(self.submit(row))

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[LedgerRow, asyncio.Future[None]]]) -> None:
        try:
            async with self._database.transaction() as connection:
                await connection.execute(schema.ledger.insert(), [asdict(row) for row, _ in batch])
        except Exception as exc:
            log.error("ledger: %d rows could not be written: %s", len(batch), exc)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
        for _, done in batch:  # a waiter that gave up (cancelled) never retrieves its outcome
            if done.done() and not done.cancelled():
                with contextlib.suppress(BaseException):
                    done.exception()


Grouping = Literal["key", "model", "day"]


@dataclass(frozen=True, slots=True)
class UsageGroup:
    group: str | None
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int

    def as_json(self, by: Grouping) -> dict[str, Any]:
        return {
            by: self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
        }


def _group_column(database: Database, by: Grouping) -> ColumnElement[Any]:
    ledger = schema.ledger
    if by == "key":
        return ledger.c.key
    if by == "model":
        return func.coalesce(ledger.c.model_served, ledger.c.model_asked)
    if database.kind == "sqlite":
        return func.strftime("%Y-%m-%d", ledger.c.at, "unixepoch")
    return func.to_char(func.timezone("UTC", func.to_timestamp(ledger.c.at)), "YYYY-MM-DD")


async def usage(
    database: Database, *, by: Grouping = "key", key: str | None = None, since: float | None = None
) -> list[UsageGroup]:
    """Requests and tokens per key, model or UTC day, for one key or all, from `since` (epoch seconds) on."""
    ledger = schema.ledger
    group = _group_column(database, by).label("group")
    query = select(
        group,
        func.count().label("requests"),
        func.coalesce(func.sum(ledger.c.input_tokens), 0),
        func.coalesce(func.sum(ledger.c.cached_tokens), 0),
        func.coalesce(func.sum(ledger.c.output_tokens), 0),
    ).group_by(group)
    if key is not None:
        query = query.where(ledger.c.key == key)
    if since is not None:
        query = query.where(ledger.c.at >= since)
    async with database.reading() as connection:
        rows = (await connection.execute(query.order_by(group))).all()
    return [UsageGroup(name, int(n), int(i), int(c), int(o)) for name, n, i, c, o in rows]


async def rows_for(database: Database, request_ids: list[str]) -> list[LedgerRow]:
    """The ledger rows of these requests (tests and audits)."""
    ledger = schema.ledger
    columns = [ledger.c[name] for name in LedgerRow.__dataclass_fields__]
    async with database.reading() as connection:
        rows = await connection.execute(select(*columns).where(ledger.c.request_id.in_(request_ids)))
        return [LedgerRow(**row._mapping) for row in rows]
