"""The usage ledger: one row per request, written by one task that commits the rows of concurrent requests
together (group commit), and the sums `rolecall usage` and `GET /admin/usage` report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from typing import Any, Literal

import asyncpg
from sqlalchemy import ColumnElement, func, select

from rolecall.store import schema
from rolecall.store.database import BUSY_TIMEOUT_MS, Database, sqlite_connect

log = logging.getLogger("rolecall.ledger")

_BATCH = 500  # rows per transaction at most
_CHECKPOINT_ROWS = 2000  # SQLite: rows between two WAL checkpoints
_PG_TIMEOUT = 30.0  # seconds to connect or to commit one batch before the batch counts as failed


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


_COLUMNS = tuple(LedgerRow.__dataclass_fields__)
_INSERT = f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class _SqliteWriter:
    """Commits batches through its own sqlite3 connection, right on the event loop: in WAL mode with
    synchronous=NORMAL a commit is a write to the WAL without fsync, tens of microseconds, far less than
    handing it to a thread (which costs a millisecond or more on a busy server, waiting for the GIL).
    Nothing slow may happen there, so this connection never waits for a lock (busy_timeout 0: a batch that
    finds the file locked, by `rolecall keys` or another instance, is retried on a thread that may wait)
    and never checkpoints (a thread checkpoints, with fsync, every `_CHECKPOINT_ROWS` rows)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        self._connection = sqlite_connect(path)
        self._connection.execute("PRAGMA busy_timeout=0")
        self._connection.execute("PRAGMA wal_autocheckpoint=0")
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Future[None] | None = None

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(_INSERT, rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _write_waiting(self, rows: list[tuple[Any, ...]]) -> None:
        self._connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            self._write(rows)
        finally:
            self._connection.execute("PRAGMA busy_timeout=0")

    def _checkpoint(self) -> None:
        connection = sqlite_connect(self._path)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    async def write(self, batch: list[LedgerRow]) -> None:
        rows = [astuple(row) for row in batch]
        loop = asyncio.get_running_loop()
        try:
            self._write(rows)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await loop.run_in_executor(self._executor, self._write_waiting, rows)
        self._since_checkpoint += len(rows)
        if self._since_checkpoint >= _CHECKPOINT_ROWS and (self._checkpointing is None or self._checkpointing.done()):
            self._since_checkpoint = 0
            self._checkpointing = loop.run_in_executor(self._executor, self._checkpoint)

    async def close(self) -> None:
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        self._executor.shutdown(wait=True)
        self._connection.close()


_PG_TYPES = {
    "at": "float8",
    "input_tokens": "int8",
    "cached_tokens": "int8",
    "output_tokens": "int8",
    "status": "int4",
    "latency_ms": "float8",
}
_PG_INSERT = (
    f"INSERT INTO ledger ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{_PG_TYPES.get(name, 'text')}[]" for i, name in enumerate(_COLUMNS, 1))
    + ")"
)


class _PostgresWriter:
    """Commits each batch as one statement (an INSERT from arrays) on a connection of its own: one round
    trip per batch, where a pooled transaction would take four (check-out ping, BEGIN, INSERT, COMMIT)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None

    async def write(self, batch: list[LedgerRow]) -> None:
        columns = [list(values) for values in zip(*(astuple(row) for row in batch), strict=True)]
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn, timeout=_PG_TIMEOUT)
        try:
            await self._connection.execute(_PG_INSERT, *columns, timeout=_PG_TIMEOUT)
        except Exception:
            if not self._connection.is_closed():
                raise
            # The connection died (a restarted server, a failover, an administrator): once more on a new one.
            # The statement is one transaction, so it committed entirely or not at all; a row lands twice
            # only if the connection broke between the commit and its acknowledgement.
            self._connection = await asyncpg.connect(self._dsn, timeout=_PG_TIMEOUT)
            await self._connection.execute(_PG_INSERT, *columns, timeout=_PG_TIMEOUT)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close(timeout=5)


class LedgerWriter:
    """`write(row)` returns once the row is committed. Rows queued while a commit runs go together in the
    next one, so N concurrent requests cost about one commit, not N."""

    def __init__(self, database: Database) -> None:
        self._database = database
        path = database.sqlite_path
        self._sink: _SqliteWriter | _PostgresWriter = (
            _SqliteWriter(path) if path else _PostgresWriter(database.postgres_dsn)
        )
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
        await self._sink.close()

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
            await self._sink.write([row for row, _ in batch])
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
