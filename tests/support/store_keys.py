"""Keys created in a server's store before it starts, as `rolecall keys create` creates them."""

from __future__ import annotations

import asyncio

from rolecall.core.caller import KeyLimits
from rolecall.service.runtime import MIGRATIONS
from rolecall.store.database import Database
from rolecall.store.keys import KeyStore


def create_keys(url: str, keys: dict[str, KeyLimits]) -> dict[str, str]:
    """Create each named key with its limits in the database at `url`; name -> the key's secret."""

    async def create() -> dict[str, str]:
        database = await Database.open(url, MIGRATIONS)
        try:
            store = KeyStore(database)
            return {name: (await store.create(name, limits))[1] for name, limits in keys.items()}
        finally:
            await database.close()

    return asyncio.run(create())
