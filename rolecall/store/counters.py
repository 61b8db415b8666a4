"""The limits' counters in the store (the service's `LimitCounters`): one versioned record per key in
`limit_counters`, changed by compare-and-set, so every instance on one PostgreSQL and every worker process
on one SQLite file counts one key's requests together, exactly.

Each change is `UPDATE … WHERE key = … AND version = <the version this process saw last>`: one statement,
in autocommit, on a connection the counters keep for themselves (no pool checkout, no BEGIN/COMMIT). It
succeeds while no other process wrote the key in between; otherwise the record is read again and the change
decided anew on it. These statements are the only database work a limited key adds to a request: one
before it starts, one when it ends."""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Connection, Double, MetaData, Table, Text
from sqlalchemy.ext.asyncio import AsyncConnection

from rolecall.store.database import BUSY_TIMEOUT_MS, Database, sqlite_connect
from rolecall.store.migrations import Migration

T = TypeVar("T")

metadata = MetaData()

limit_counters = Table(
    "limit_counters",
    metadata,
    Column("key", Text, primary_key=True),  # Caller.label: a store key's name, or config:<key id>
    Column("version", BigInteger, nullable=False),
    Column("record", Text, nullable=False),  # the service's KeyState, as JSON
    Column("updated_at", Double, nullable=False),
)


def _create_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[limit_counters])


LIMITS_MIGRATIONS: tuple[Migration, ...] = (Migration("limits", 1, "limit_counters", _create_tables),)

# Plain SQL that SQLite (3.24+) and PostgreSQL both take, with `:name` parameters.
_READ = "SELECT version, record FROM limit_counters WHERE key = :key"
_FIRST = (
    "INSERT INTO limit_counters (key, version, record, updated_at) VALUES (:key, 1, :record, :now) "
    "ON CONFLICT (key) DO NOTHING"
)
_NEXT = (
    "UPDATE limit_counters SET version = :version + 1, record = :record, updated_at = :now "
    "WHERE key = :key AND version = :version"
)


class StoreCounters:
    """`LimitCounters` over the store's database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._seen: dict[str, tuple[int, str | None]] = {}  # key -> the last (version, record) this process saw
        self._held: _Statements | _SqliteStatements | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the held connection

    async def read(self, key: str) -> str | None:
        return (await self._fetch(key))[1]

    async def update(self, key: str, change: Callable[[str | None], tuple[str, T]]) -> T:
        seen = self._seen.get(key)
        while True:
            version, record = seen if seen is not None else await self._fetch(key)
            new, result = change(record)
            if await self._write(key, version, new):
                self._seen[key] = (version + 1, new)
                return result
            seen = None  # another process wrote first: read its record and decide again

    async def close(self) -> None:
        """Give the held connection back (at shutdown)."""
        async with self._lock:
            if self._held is not None:
                await self._held.close()
                self._held = None

    async def _fetch(self, key: str) -> tuple[int, str | None]:
        rows, _ = await self._run(_READ, {"key": key})
        found = (0, None) if not rows else (int(rows[0][0]), str(rows[0][1]))
        self._seen[key] = found
        return found

    async def _write(self, key: str, version: int, record: str) -> bool:
        """Store `record` as version `version + 1` if the key is still at `version` (0: no record yet)."""
        parameters = {"key": key, "version": version, "record": record, "now": time.time()}
        _, changed = await self._run(_FIRST if version == 0 else _NEXT, parameters)
        return changed == 1

    async def _run(self, sql: str, parameters: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        async with self._lock:
            if self._held is None:
                self._held = await _Statements.open(self.database)
            try:
                return await self._held.run(sql, parameters)
            except BaseException:
                # A broken connection (the database restarted): the next statement opens a fresh one.
                held, self._held = self._held, None
                await held.close()
                raise


class _Statements:
    """PostgreSQL: a connection of the pool, kept, its asyncpg connection used directly: each statement is one
    trip to the database, in autocommit (SQLAlchemy would add its own per-statement work)."""

    def __init__(self, connection: AsyncConnection, driver: Any) -> None:
        self._connection = connection  # the pool's hold on it
        self._driver = driver  # asyncpg.Connection

    @classmethod
    async def open(cls, database: Database) -> _Statements | _SqliteStatements:
        path = database.sqlite_path
        if path is not None:
            return _SqliteStatements(path)
        connection = await database.engine.connect()
        raw = await connection.get_raw_connection()
        return cls(connection, raw.driver_connection)

    async def run(self, sql: str, parameters: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        """The rows a statement returns and how many rows it changed."""
        numbered, names = _numbered(sql)
        values = [parameters[name] for name in names]
        if sql.startswith("SELECT"):
            return [tuple(row) for row in await self._driver.fetch(numbered, *values)], 0
        status = await self._driver.execute(numbered, *values)  # "UPDATE 1", "INSERT 0 1"
        return [], int(status.rsplit(" ", 1)[-1])

    async def close(self) -> None:
        await self._connection.close()


class _SqliteStatements:
    """SQLite: a sqlite3 connection of their own, used right on the event loop, as the ledger's writer does
    (a statement on a local WAL file takes microseconds; a thread would cost a millisecond of GIL on a busy
    server). It never waits there: no busy timeout (a file another process has locked sends the statement to
    a thread that may wait) and no checkpoints (the ledger's thread checkpoints the file)."""

    def __init__(self, path: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="limits-sqlite")
        self._connection = sqlite_connect(path)
        self._connection.execute("PRAGMA busy_timeout=0")
        self._connection.execute("PRAGMA wal_autocheckpoint=0")

    async def run(self, sql: str, parameters: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        try:
            return self._execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._waiting, sql, parameters)

    def _execute(self, sql: str, parameters: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        cursor = self._connection.execute(sql, parameters)
        try:
            return [tuple(row) for row in cursor.fetchall()], cursor.rowcount
        finally:
            cursor.close()

    def _waiting(self, sql: str, parameters: Mapping[str, Any]) -> tuple[list[tuple[Any, ...]], int]:
        self._connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            return self._execute(sql, parameters)
        finally:
            self._connection.execute("PRAGMA busy_timeout=0")

    async def close(self) -> None:
        self._connection.close()
        self._executor.shutdown(wait=False)


@functools.cache
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as PostgreSQL's `$1, $2…` (a name used twice keeps its number), and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r":(\w+)", number, sql), tuple(names)
