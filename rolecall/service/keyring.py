"""The store's keys as authentication sees them: held in memory, so checking a key never waits on the
database, and reloaded when the store's `keys_version` changes. That one-row read runs twice a second in the
background, so a key created, revoked or changed on any instance (or by `rolecall keys`) takes effect on
every instance within a second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from rolecall.store.keys import KeyStore, StoredKey, key_hash

log = logging.getLogger("rolecall.keys")

REFRESH_INTERVAL = 0.5  # seconds; a change is seen within one interval plus one read


class KeyDirectory:
    def __init__(self, keys: KeyStore, interval: float = REFRESH_INTERVAL) -> None:
        self.keys = keys
        self._interval = interval
        self._by_hash: dict[str, StoredKey] = {}
        self._by_name: dict[str, StoredKey] = {}
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def any(self) -> bool:
        """Whether the store holds any key, revoked ones included (revoking the last key must not reopen
        the server)."""
        return bool(self._by_hash)

    def lookup(self, credential: str) -> StoredKey | None:
        """The stored key this secret is, if any (revoked and expired ones too: the caller says why not)."""
        if not self._by_hash:
            return None
        return self._by_hash.get(key_hash(credential))

    def named(self, name: str) -> StoredKey | None:
        """The stored key of that name (a batch's owner, whose requests run after its create call)."""
        return self._by_name.get(name)

    async def refresh(self) -> None:
        """Reload the keys if any changed since the last load."""
        version = await self.keys.version()
        if version != self._version:
            loaded = await self.keys.all()
            self._by_hash = {key.key_hash: key for key in loaded}
            self._by_name = {key.name: key for key in loaded}
            self._version = version

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="key-directory")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception as exc:  # the database went away: keep the last keys, say so once
                if not failing:
                    log.warning("keys: cannot read the store (%s); using the keys loaded before", exc)
                failing = True
            else:
                if failing:
                    log.info("keys: the store answers again")
                failing = False


def refusal(key: StoredKey, now: datetime) -> str | None:
    """Why a stored key is refused at `now`, or None if it is usable."""
    if key.revoked_at is not None:
        return f"this API key ({key.name}) was revoked; ask the server's admin for a new one"
    expires = key.limits.expires_at
    if expires is not None and now >= expires:
        return (
            f"this API key ({key.name}) expired at {expires:%Y-%m-%d %H:%M} UTC; ask the server's admin for a new one"
        )
    return None
