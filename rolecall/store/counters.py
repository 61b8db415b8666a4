"""The limits' counters in the store (the service's `LimitCounters`): one versioned record per key in
`limit_counters`, changed atomically however many instances and worker processes share the database.

SQLite: read and write inside one BEGIN IMMEDIATE transaction, which every process on the file queues for:
exact, and local (no round trip to pay for).
PostgreSQL: compare-and-set on the record's version, in autocommit. Each instance remembers the last version
it saw per key and writes against it directly: one round trip (`UPDATE … WHERE version = …`) while no other
instance wrote in between; otherwise it reads the record again and retries on the fresh one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import BigInteger, Column, Connection, Double, MetaData, Table, Text, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rolecall.store.database import Database
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


class StoreCounters:
    """`LimitCounters` over the store's database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._seen: dict[str, tuple[int, str]] = {}  # key -> the last (version, record) this instance saw
        # SQLite: this process's updates queue here rather than on the file's lock, whose busy handler sleeps.
        self._local = asyncio.Lock()

    async def read(self, key: str) -> str | None:
        async with self.database.reading() as connection:
            found = await connection.execute(select(limit_counters.c.record).where(limit_counters.c.key == key))
            return found.scalar_one_or_none()

    async def update(self, key: str, change: Callable[[str | None], tuple[str, T]]) -> T:
        if self.database.kind == "sqlite":
            async with self._local, self.database.transaction() as connection:  # BEGIN IMMEDIATE: the file's lock
                version, record = await _fetch(connection, key)
                new, result = change(record)
                await _write(connection, key, version, new)
                return result
        return await self._compare_and_set(key, change)

    async def _compare_and_set(self, key: str, change: Callable[[str | None], tuple[str, T]]) -> T:
        async with self.database.engine.connect() as plain:
            connection = await plain.execution_options(isolation_level="AUTOCOMMIT")
            seen = self._seen.get(key)
            while True:
                version, record = seen if seen is not None else await _fetch(connection, key)
                new, result = change(record)
                if await _write(connection, key, version, new):
                    self._seen[key] = (version + 1, new)
                    return result
                seen = None  # another instance wrote first: read its record and decide again


async def _fetch(connection: AsyncConnection, key: str) -> tuple[int, str | None]:
    """The record's version and text; version 0 and None when the key has none yet."""
    query = select(limit_counters.c.version, limit_counters.c.record).where(limit_counters.c.key == key)
    row = (await connection.execute(query)).first()
    return (0, None) if row is None else (int(row.version), row.record)


async def _write(connection: AsyncConnection, key: str, version: int, record: str) -> bool:
    """Store `record` as version `version + 1` if the key is still at `version`; False if it moved on."""
    now = time.time()
    if version == 0:  # the key's first record: whoever inserts it first wins
        build = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        first = build(limit_counters).values(key=key, version=1, record=record, updated_at=now)
        written = await connection.execute(first.on_conflict_do_nothing(index_elements=["key"]))
        return written.rowcount == 1
    written = await connection.execute(
        update(limit_counters)
        .where(limit_counters.c.key == key, limit_counters.c.version == version)
        .values(version=version + 1, record=record, updated_at=now)
    )
    return written.rowcount == 1
