"""A batch: `requests` requests at a fixed concurrency, grouped into conversations of `turns` turns."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from rolecall.bench.dialects import Target
from rolecall.bench.measure import Sample, measure
from rolecall.bench.workload import Workload


@dataclass(frozen=True, slots=True)
class Batch:
    """Every sample of one batch and its wall time (seconds)."""

    target: Target
    concurrency: int
    samples: list[Sample]
    duration: float


async def run_batch(
    target: Target,
    workload: Workload,
    concurrency: int,
    requests: int,
    *,
    timeout: float = 600.0,
    on_done: Callable[[Sample], None] = lambda _: None,
) -> Batch:
    """Run `requests` requests with at most `concurrency` in flight. Each conversation's turns go in
    order on one worker; conversations run side by side."""
    conversations = -(-requests // workload.turns)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(conversations):
        queue.put_nowait(number)
    salt = secrets.token_hex(4)  # this batch's prompts share no prefix with any other batch's
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                await _conversation(client, target, workload, f"{salt}-{number}", _record)

        def _record(sample: Sample) -> None:
            samples.append(sample)
            on_done(sample)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, conversations))))
        duration = time.perf_counter() - began
    return Batch(target, concurrency, samples, duration)


async def _conversation(
    client: httpx.AsyncClient, target: Target, workload: Workload, tag: str, record: Callable[[Sample], None]
) -> None:
    messages = [{"role": "user", "content": workload.first_message(tag)}]
    for turn in range(workload.turns):
        sample = await measure(client, target, workload, messages, turn)
        record(sample)
        if not sample.ok:
            break  # the rest of this conversation has no history to build on
        messages += [
            {"role": "assistant", "content": sample.text or "..."},
            {"role": "user", "content": workload.follow_up(turn)},
        ]
