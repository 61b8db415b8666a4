"""The store's foundation on both real backends: the file created on first start, WAL, migrations that run
once however many instances start at once, and the URL forms rolecall accepts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from rolecall.store import schema
from rolecall.store.database import Database, database_url
from rolecall.store.migrations import STORE_MIGRATIONS, Migration, pending


async def _applied(database: Database) -> list[tuple[str, int]]:
    async with database.transaction() as connection:
        rows = await connection.execute(
            select(schema.schema_migrations.c.component, schema.schema_migrations.c.version)
        )
        return sorted((component, version) for component, version in rows)


def test_sqlite_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    async def scenario() -> str:
        database = await Database.open(database_url(None, tmp_path / "new" / "dir"))
        try:
            async with database.transaction() as connection:
                return (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
        finally:
            await database.close()

    assert asyncio.run(scenario()) == "wal"
    assert (tmp_path / "new" / "dir" / "rolecall.db").is_file()


def test_concurrent_starts_migrate_once_and_later_components_add_tables(store_url: str) -> None:
    def create_extra(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE extra_counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL)"))

    extra = Migration("extra", 1, "extra_counters", create_extra)

    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        # Four instances start at once on an empty database: one migrates, the others wait and find it done.
        opened = await asyncio.gather(*(Database.open(store_url) for _ in range(4)))
        first = await _applied(opened[0])
        for database in opened:
            await database.close()
        both = await asyncio.gather(*(Database.open(store_url, [*STORE_MIGRATIONS, extra]) for _ in range(2)))
        try:
            async with both[0].transaction() as connection:
                await connection.execute(text("INSERT INTO extra_counters VALUES ('a', 1)"))
            return first, await _applied(both[1])
        finally:
            for database in both:
                await database.close()

    first, second = asyncio.run(scenario())
    assert first == [("store", 1)]
    assert second == [("extra", 1), ("store", 1)]


def test_migration_versions_must_be_contiguous() -> None:
    def noop(connection: Connection) -> None:
        pass

    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        pending(set(), [Migration("x", 1, "a", noop), Migration("x", 3, "b", noop)])
    assert [m.version for m in pending({("x", 1)}, [Migration("x", 2, "b", noop), Migration("x", 1, "a", noop)])] == [2]


@pytest.mark.parametrize("bad", ["mysql://host/db", "rolecall.db"])
def test_unsupported_urls_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///PATH or postgresql://HOST/DB"):
        asyncio.run(Database.open(bad))


def test_the_polls_read_on_a_connection_of_their_own_that_outlives_a_dropped_one(store_url: str) -> None:
    """`read_row`, the keys' and the batch runner's poll: it sees other instances' writes at once and, on
    PostgreSQL, survives its connection being dropped (a restarted server, an administrator) without a miss."""
    version = "SELECT value FROM store_meta WHERE name = 'keys_version'"
    bump = text("UPDATE store_meta SET value = value + 1 WHERE name = 'keys_version'")

    async def scenario() -> list[int]:
        polling, other = await Database.open(store_url), await Database.open(store_url)
        try:
            seen = [(await polling.read_row(version) or (-1,))[0]]
            async with other.transaction() as connection:
                await connection.execute(bump)
            seen.append((await polling.read_row(version) or (-1,))[0])
            if polling.kind == "postgresql":
                async with other.transaction() as connection:  # every other session of this database: the poll's
                    await connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
            seen.append((await polling.read_row(version) or (-1,))[0])
            return seen
        finally:
            await polling.close()
            await other.close()

    first, after_bump, after_drop = asyncio.run(scenario())
    assert after_bump == first + 1 and after_drop == after_bump


class _LockedFile:
    """In place of the poll's own connection: what it raises while another process holds the file locked (in
    WAL mode a reader meets that only in rare moments, such as another process recovering the WAL)."""

    def execute(self, sql: str) -> None:
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


def test_a_poll_that_meets_a_locked_sqlite_file_reads_through_the_pool(tmp_path: Path) -> None:
    """The poll's own SQLite connection never waits (busy timeout 0): when it meets a lock, `read_row` reads
    through the pool, whose connections wait out a lock, and still answers."""
    version = "SELECT value FROM store_meta WHERE name = 'keys_version'"

    async def scenario() -> tuple[object, object]:
        database = await Database.open(database_url(None, tmp_path))
        try:
            expected = await database.read_row(version)
            database._quick = _LockedFile()  # type: ignore[assignment]
            return expected, await database.read_row(version)
        finally:
            await database.close()

    expected, through_pool = asyncio.run(scenario())
    assert expected is not None and through_pool == expected
