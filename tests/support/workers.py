"""The parent's side of `--workers` for in-process tests: a real coordinator on its own event loop in a
background thread, and the `WorkerShare` each worker app is built with."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rolecall.service.workers.coordinator import Coordinator
from rolecall.service.workers.share import WorkerShare

T = TypeVar("T")


class CoordinatorThread:
    def __init__(self, coordinator: Coordinator, loop: asyncio.AbstractEventLoop) -> None:
        self.coordinator = coordinator
        self.loop = loop
        self.secret = secrets.token_bytes(32)

    def share(self, number: int) -> WorkerShare:
        """What the parent hands worker `number`."""
        return WorkerShare(number, self.coordinator.path, self.secret)

    def publish_health(self, model: str, answers: dict[str, bool]) -> None:
        """A probe round of `model`'s replicas, as the parent's prober reports it."""
        self.loop.call_soon_threadsafe(self.coordinator.publish_health, model, answers)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the coordinator's loop (the parent's), and return its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    def background(self, model: str) -> int:
        """Background requests waiting or holding a slot, across all workers."""

        async def read() -> int:
            return self.coordinator.background(model)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=5)

    def counts(self, model: str) -> tuple[int, int]:
        """(slots held, requests waiting) across all workers, as the coordinator sees them."""

        async def read() -> tuple[int, int]:
            return self.coordinator.counts().get(model, (0, 0))

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=5)


@contextmanager
def coordinator_thread() -> Iterator[CoordinatorThread]:
    # A short private path: a Unix socket's path is limited to 107 bytes, and pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="rolecall-") as folder, _coordinator(Path(folder)) as running:
        yield running


@contextmanager
def _coordinator(folder: Path) -> Iterator[CoordinatorThread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    coordinator = Coordinator(folder / "coordinator.sock")
    asyncio.run_coroutine_threadsafe(coordinator.start(), loop).result(timeout=10)
    try:
        yield CoordinatorThread(coordinator, loop)
    finally:
        asyncio.run_coroutine_threadsafe(coordinator.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
