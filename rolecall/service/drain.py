"""Graceful shutdown: after SIGTERM, in-flight generations get a grace period; those still running
when it ends are stopped with an `overloaded_error` (an `error` event on a stream), which the SDKs
retry, presumably against another instance."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TypeVar

from rolecall.core.errors import Overloaded

_SHUTTING_DOWN = "Overloaded: rolecall is shutting down"
T = TypeVar("T")


class Drain:
    def __init__(self) -> None:
        self.expired = False
        self._generating: set[asyncio.Task] = set()

    def begin(self, grace: float) -> None:
        """Start the grace period (call on the event loop)."""
        asyncio.get_running_loop().call_later(grace, self._expire)

    def _expire(self) -> None:
        self.expired = True
        for task in list(self._generating):
            task.cancel()

    async def guard(self, events: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """`events`, ended by `Overloaded` if the grace period runs out while they are still coming."""
        task = asyncio.current_task()
        async with contextlib.aclosing(events):
            if self.expired or task is None:
                raise Overloaded(_SHUTTING_DOWN, retry_after=1)
            self._generating.add(task)
            try:
                async for event in events:
                    yield event
            except asyncio.CancelledError:
                if not self.expired:
                    raise
                task.uncancel()  # our own cancellation: it becomes the error the client is told
                raise Overloaded(_SHUTTING_DOWN, retry_after=1) from None
            finally:
                self._generating.discard(task)
