"""Keys and the ledger on both real backends: secrets stored only as hashes, revocation, names never reused,
group commit of concurrent rows, and the usage sums by key, model and day."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from rolecall.core.caller import KeyLimits
from rolecall.store import schema
from rolecall.store.database import Database, database_url
from rolecall.store.keys import KeyNameTaken, KeyStore, key_hash
from rolecall.store.ledger import LedgerRow, LedgerWriter, rows_for, usage


def test_keys_are_kept_as_hashes_and_revoked_once(store_url: str) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    limits = KeyLimits(requests_per_minute=30, quota_tokens=1000, quota_window_seconds=18000, models=("smol*", "x"))

    async def scenario() -> None:
        database = await Database.open(store_url)
        keys = KeyStore(database)
        try:
            name = f"alice-{time.monotonic_ns()}"  # the PostgreSQL database is shared by the module
            before = await keys.version()
            created, secret = await keys.create(name, KeyLimits(**{**_fields(limits), "expires_at": expires}))
            assert secret.startswith("rc-") and len(secret) >= 43
            assert created.key_hash == key_hash(secret) and created.key_id == key_hash(secret)[:8]
            assert created.limits.models == ("smol*", "x") and created.limits.expires_at == expires
            assert created.limits.requests_per_minute == 30 and created.limits.tokens_per_minute is None
            async with database.reading() as connection:
                stored = [tuple(row) for row in await connection.execute(select(schema.api_keys))]
            assert not any(secret in str(value) for row in stored for value in row)
            with pytest.raises(KeyNameTaken):
                await keys.create(name, KeyLimits())
            now = datetime.now(UTC)
            assert created.usable(now) and not created.usable(expires + timedelta(seconds=1))
            revoked = await keys.revoke(name)
            assert revoked is not None and revoked.revoked_at is not None and not revoked.usable(now)
            again = await keys.revoke(name)
            assert again is not None and again.revoked_at == revoked.revoked_at
            assert await keys.revoke("nobody") is None
            assert await keys.version() >= before + 3
            assert name in [key.name for key in await keys.all()]
        finally:
            await database.close()

    asyncio.run(scenario())


def _fields(limits: KeyLimits) -> dict[str, object]:
    return {name: getattr(limits, name) for name in limits.__dataclass_fields__}


def test_concurrent_rows_are_committed_together_and_summed(store_url: str) -> None:
    run = f"r{time.monotonic_ns()}"
    day = datetime(2026, 3, 4, 23, 59, tzinfo=UTC).timestamp()

    def row(i: int) -> LedgerRow:
        return LedgerRow(
            at=day + (i % 2) * 120,  # half of them on the next UTC day
            request_id=f"{run}-{i}",
            key=f"{run}-{'a' if i % 3 else 'b'}",
            door="anthropic",
            model_asked="MiniMax-M2.7",
            model_served="smollm2",
            input_tokens=10 + i,
            cached_tokens=i,
            output_tokens=2 * i,
            stop_reason="end_turn",
            status=200,
            latency_ms=1.5,
        )

    async def scenario() -> None:
        database = await Database.open(store_url)
        writer = LedgerWriter(database)
        writer.start()
        try:
            rows = [row(i) for i in range(60)]
            await asyncio.gather(*(writer.write(r) for r in rows))
            assert sorted(await rows_for(database, [r.request_id for r in rows]), key=lambda r: r.input_tokens) == rows
            by_key = {g.group: g for g in await usage(database, by="key", since=day - 1) if g.group.startswith(run)}
            expected_a = [r for r in rows if r.key == f"{run}-a"]
            assert by_key[f"{run}-a"].requests == len(expected_a) == 40
            assert by_key[f"{run}-a"].input_tokens == sum(r.input_tokens for r in expected_a)
            assert by_key[f"{run}-b"].output_tokens == sum(r.output_tokens for r in rows if r.key == f"{run}-b")
            only_b = await usage(database, by="day", key=f"{run}-b")
            assert [(g.group, g.requests) for g in only_b] == [("2026-03-04", 10), ("2026-03-05", 10)]
            models = await usage(database, by="model", key=f"{run}-a", since=day + 60)
            assert [(g.group, g.requests, g.cached_tokens) for g in models] == [
                ("smollm2", 20, sum(r.cached_tokens for r in expected_a if r.at > day))
            ]
        finally:
            await writer.close()
            await database.close()

    asyncio.run(scenario())


def test_rows_queued_at_close_are_still_written(tmp_path: Path) -> None:
    async def scenario() -> int:
        url = database_url(None, tmp_path)
        database = await Database.open(url)
        writer = LedgerWriter(database)
        writer.start()
        pending = [
            writer.submit(LedgerRow(0.0, f"q{i}", None, "openai", None, None, 0, 0, 0, None, 401, 0.1))
            for i in range(5)
        ]
        await writer.close()
        assert all(done.done() and done.exception() is None for done in pending)
        found = len(await rows_for(database, [f"q{i}" for i in range(5)]))
        await database.close()
        return found

    assert asyncio.run(scenario()) == 5


def test_sqlite_rows_wait_for_a_lock_held_elsewhere_without_blocking_the_loop(tmp_path: Path) -> None:
    """Another process writing (`rolecall keys create`, a second instance) holds SQLite's write lock: the
    row is committed once the lock is gone, and the event loop keeps running meanwhile."""
    url = database_url(None, tmp_path)

    async def scenario() -> tuple[int, int]:
        database = await Database.open(url)
        writer = LedgerWriter(database)
        writer.start()
        holder = sqlite3.connect(tmp_path / "rolecall.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0
        try:
            pending = asyncio.ensure_future(
                writer.write(LedgerRow(0.0, "locked", None, "openai", None, None, 0, 0, 0, None, 200, 0.1))
            )
            while ticks < 20:  # the loop still turns while the row waits for the lock
                await asyncio.sleep(0.01)
                ticks += 1
            assert not pending.done()
            holder.execute("COMMIT")
            await asyncio.wait_for(pending, timeout=10)
            return ticks, len(await rows_for(database, ["locked"]))
        finally:
            holder.close()
            await writer.close()
            await database.close()

    assert asyncio.run(scenario()) == (20, 1)


def test_postgres_writer_reconnects_after_losing_its_connection(postgres_url: str) -> None:
    def row(request_id: str) -> LedgerRow:
        return LedgerRow(0.0, request_id, "k", "anthropic", None, None, 1, 0, 1, None, 200, 0.1)

    async def scenario() -> int:
        database = await Database.open(postgres_url)
        writer = LedgerWriter(database)
        writer.start()
        try:
            await writer.write(row("before-cut"))
            async with database.transaction() as connection:  # as a restarted server or an administrator would
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND datname = current_database()"
                    )
                )
            await writer.write(row("after-cut"))
            return len(await rows_for(database, ["before-cut", "after-cut"]))
        finally:
            await writer.close()
            await database.close()

    assert asyncio.run(scenario()) == 2
