"""Reading a server's store from a test: the ledger rows of given requests, on either backend."""

from __future__ import annotations

import asyncio

from rolecall.store.database import Database
from rolecall.store.ledger import LedgerRow, rows_for


def ledger_rows(url: str, request_ids: list[str]) -> list[LedgerRow]:
    """The rows the store at `url` holds for these requests (one per request, if all is well)."""

    async def read() -> list[LedgerRow]:
        database = await Database.open(url)
        try:
            return await rows_for(database, request_ids)
        finally:
            await database.close()

    return asyncio.run(read())


def integrity(url: str) -> str:
    """SQLite's own check of the whole file ("ok" when intact)."""
    from sqlalchemy import text

    async def check() -> str:
        database = await Database.open(url)
        try:
            async with database.reading() as connection:
                return str((await connection.execute(text("PRAGMA integrity_check"))).scalar_one())
        finally:
            await database.close()

    return asyncio.run(check())
