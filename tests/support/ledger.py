"""Reading a server's store from a test: the ledger rows of given requests, on either backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text

from rolecall.core.caller import KeyLimits
from rolecall.store.database import Database
from rolecall.store.keys import KeyStore
from rolecall.store.ledger import LedgerRow, rows_for, usage

T = TypeVar("T")


def _on(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await Database.open(url)
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


def ledger_rows(url: str, request_ids: list[str]) -> list[LedgerRow]:
    """The rows the store at `url` holds for these requests (one per request, if all is well)."""
    return _on(url, lambda database: rows_for(database, request_ids))


def create_key(url: str, name: str) -> str:
    """A new key without limits in the store at `url` (as `rolecall keys create` makes it); its secret."""

    async def create(database: Database) -> str:
        return (await KeyStore(database).create(name, KeyLimits()))[1]

    return _on(url, create)


def usage_of(url: str, key: str) -> int:
    """How many requests the ledger holds for `key`."""

    async def count(database: Database) -> int:
        groups = await usage(database, by="key", key=key)
        return sum(group.requests for group in groups)

    return _on(url, count)


def integrity(url: str) -> str:
    """SQLite's own check of the whole file ("ok" when intact)."""

    async def check(database: Database) -> str:
        async with database.reading() as connection:
            return str((await connection.execute(text("PRAGMA integrity_check"))).scalar_one())

    return _on(url, check)
