"""Graceful shutdown: after SIGTERM, in-flight generations get a grace period; those still running
when it ends are stopped with an `overloaded_error` (an `error` event on a stream), which the SDKs
retry, presumably against another instance."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from rolecall.core.errors import Overloaded

_SHUTTING_DOWN = "Overloaded: rolecall is shutting down"


class Drain:
    def __init__(self) -> None:
        self.begun = False  # rolecall is stopping (SIGTERM or Ctrl-C)
        self.expired = False
        self._generating: set[asyncio.Task] = set()

    def begin(self, grace: float) -> None:
        """Start the grace period (call on the event loop)."""
        self.begun = True
        asyncio.get_running_loop().call_later(grace, self._expire)

    def _expire(self) -> None:
        self.expired = True
        for task in list(self._generating):
            task.cancel()

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        """Around a generation's work in the current task (a generator's body: it costs nothing per event): the
        grace period running out cancels that task, and the cancellation becomes `Overloaded`."""
        task = asyncio.current_task()
        if self.expired or task is None:
            raise Overloaded(_SHUTTING_DOWN, retry_after=1)
        self._generating.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self.expired:
                raise
            task.uncancel()  # our own cancellation: it becomes the error the client is told
            raise Overloaded(_SHUTTING_DOWN, retry_after=1) from None
        finally:
            self._generating.discard(task)
