"""The coordinator channel of `--workers` in one event loop: a real coordinator on a Unix socket and two real
worker links (each is what one worker process holds), for the channel's tests."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from rolecall.service.admission import BACKGROUND_QUIET
from rolecall.service.metrics import Metrics
from rolecall.service.workers.coordinator import Coordinator
from rolecall.service.workers.link import CoordinatorLink, SharedAdmission


@asynccontextmanager
async def channel(
    *, slots: int = 2, queue_length: int = 4, max_wait: float = 5.0, quiet: float = BACKGROUND_QUIET
) -> AsyncIterator[tuple[Coordinator, list[CoordinatorLink], list[SharedAdmission]]]:
    """A coordinator serving model "m" with `slots` slots, and two connected workers' links and admissions. The
    workers' /metrics count 3 and 4 answered messages."""
    # A short private path: a Unix socket's path is limited to 107 bytes, and pytest's tmp_path can be longer.
    folder = tempfile.TemporaryDirectory(prefix="rolecall-")
    coordinator = Coordinator(Path(folder.name) / "coordinator.sock", quiet=quiet)
    await coordinator.start()
    links = [CoordinatorLink(coordinator.path, number) for number in (1, 2)]
    metrics = [Metrics(), Metrics()]
    for link, own in zip(links, metrics, strict=True):
        await link.connect({"m": [slots, queue_length, max_wait]}, lambda own=own: own.exposition().decode())
    metrics[0].requests.labels("/v1/messages", "200").inc(3)
    metrics[1].requests.labels("/v1/messages", "200").inc(4)
    try:
        yield coordinator, links, [SharedAdmission(link, {"m": slots}) for link in links]
    finally:
        for link in links:
            await link.close()
        await coordinator.close()
        folder.cleanup()


async def settle(condition: Callable[[], bool]) -> None:
    """Let messages cross the socket until `condition` holds (fails the test after 5 s)."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the coordinator never got there"
        await asyncio.sleep(0.005)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())
