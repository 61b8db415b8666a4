"""Where the limits' counts live: one small versioned record per key, changed atomically.

The service decides (`state.py`, pure); a `LimitCounters` only stores. The store implements it in SQL, so
every instance on one PostgreSQL (and every worker process on one SQLite file) counts one key's requests
together; `MemoryCounters` serves a single process (and the unit tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class LimitCounters(Protocol):
    async def read(self, key: str) -> str | None:
        """The key's record as it stands (None: none yet)."""
        ...

    async def update(self, key: str, change: Callable[[str | None], tuple[str, T]]) -> T:
        """Replace the key's record with what `change` makes of it (None: no record yet), atomically with
        respect to every other instance, and return `change`'s result. `change` may be called more than once
        (when another instance wrote in between), so it must be pure."""
        ...

    async def close(self) -> None:
        """Release what the counters hold (at shutdown)."""
        ...


class MemoryCounters:
    """The records in this process's memory: exact for one process, shared by nothing else."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}

    async def read(self, key: str) -> str | None:
        return self._records.get(key)

    async def update(self, key: str, change: Callable[[str | None], tuple[str, T]]) -> T:
        # No await between the read and the write: atomic on the event loop.
        record, result = change(self._records.get(key))
        self._records[key] = record
        return result

    async def close(self) -> None:
        return None
