"""API keys in the store: created with a random 256-bit secret that is shown once and kept only as its
sha256 (the secret is random, not a password: a fast hash is enough and lets a lookup be one index probe)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rolecall.core.caller import KeyLimits
from rolecall.store import schema
from rolecall.store.database import Database

KEY_PREFIX = "rc-"
_VERSION = "SELECT value FROM store_meta WHERE name = 'keys_version'"
_KEY_ID_CHARS = 8  # as `rolecall serve` names config keys: the first hex digits of the sha256


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyNameTaken(ValueError):
    """A key of that name exists (revoked ones included: a name is never reused for another key)."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as the store holds it (never the secret)."""

    name: str
    key_hash: str
    key_id: str
    created_at: datetime
    revoked_at: datetime | None
    limits: KeyLimits

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        expires = self.limits.expires_at
        return self.revoked_at is None and (expires is None or now < expires)


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _from_row(row: Row[Any]) -> StoredKey:
    limits = KeyLimits(
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        concurrency=row.concurrency,
        quota_tokens=row.quota_tokens,
        quota_window_seconds=row.quota_window_seconds,
        models=tuple(glob for glob in row.models.split(",") if glob),
        expires_at=_when(row.expires_at),
    )
    created = _when(row.created_at)
    assert created is not None
    return StoredKey(row.name, row.key_hash, row.key_id, created, _when(row.revoked_at), limits)


async def _bump_version(connection: AsyncConnection) -> None:
    meta = schema.store_meta
    await connection.execute(update(meta).where(meta.c.name == "keys_version").values(value=meta.c.value + 1))


class KeyStore:
    """Create, list, show and revoke keys; every change bumps `keys_version` for the other instances."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(self, name: str, limits: KeyLimits) -> tuple[StoredKey, str]:
        """A new key named `name`; returns it with its secret (shown once, never stored)."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = key_hash(secret)
        expires = limits.expires_at.timestamp() if limits.expires_at else None
        values = {
            "name": name,
            "key_hash": digest,
            "key_id": digest[:_KEY_ID_CHARS],
            "created_at": time.time(),
            "expires_at": expires,
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_minute": limits.tokens_per_minute,
            "concurrency": limits.concurrency,
            "quota_tokens": limits.quota_tokens,
            "quota_window_seconds": limits.quota_window_seconds,
            "models": ",".join(limits.models),
        }
        try:
            async with self.database.transaction() as connection:
                await connection.execute(schema.api_keys.insert().values(**values))
                await _bump_version(connection)
        except IntegrityError:
            raise KeyNameTaken(f"a key named {name!r} exists already (revoked keys keep their names)") from None
        stored = await self.get(name)
        assert stored is not None
        return stored, secret

    async def get(self, name: str) -> StoredKey | None:
        async with self.database.reading() as connection:
            row = (await connection.execute(select(schema.api_keys).where(schema.api_keys.c.name == name))).first()
        return None if row is None else _from_row(row)

    async def all(self) -> list[StoredKey]:
        """Every key, revoked and expired ones included, oldest first."""
        async with self.database.reading() as connection:
            rows = await connection.execute(select(schema.api_keys).order_by(schema.api_keys.c.id))
            return [_from_row(row) for row in rows]

    async def revoke(self, name: str) -> StoredKey | None:
        """Revoke the key (it is refused within a second everywhere); None if there is no such key. Revoking
        twice keeps the first time."""
        keys = schema.api_keys
        async with self.database.transaction() as connection:
            await connection.execute(
                update(keys).where(keys.c.name == name, keys.c.revoked_at.is_(None)).values(revoked_at=time.time())
            )
            await _bump_version(connection)
        return await self.get(name)

    async def version(self) -> int:
        """The `keys_version` counter: it changes whenever any key does.

        Every instance reads it twice a second, on the connection the store keeps for such polls
        (`Database.read_row`: on SQLite right on the event loop)."""
        row = await self.database.read_row(_VERSION)
        assert row is not None  # the migration inserts it
        return int(row[0])
