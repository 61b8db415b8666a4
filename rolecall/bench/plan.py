"""A whole benchmark run: every concurrency level, for each level `rounds` rounds in which the
targets take turns (A B C, then C B A, ...), so that noise from a shared machine hits each alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from rolecall.bench.dialects import Target
from rolecall.bench.progress import Progress
from rolecall.bench.runner import Batch, run_batch
from rolecall.bench.stats import compare, summarize
from rolecall.bench.workload import Workload


@dataclass(frozen=True, slots=True)
class Plan:
    targets: tuple[Target, ...]  # the first is measured against each of the others
    workload: Workload
    concurrency: tuple[int, ...] = (1,)
    requests: int = 16  # per target, level and round
    rounds: int = 1
    warmup: int = 0  # unmeasured requests per target before the first level
    timeout: float = 600.0


async def run_plan(plan: Plan, progress: Progress) -> dict[str, Any]:
    """Run the plan; the result is what `--json` prints."""
    ticker = asyncio.create_task(_tick(progress))
    try:
        return await _run(plan, progress)
    finally:
        ticker.cancel()


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(1.0)
        progress.tick()


async def _run(plan: Plan, progress: Progress) -> dict[str, Any]:
    if plan.warmup:
        for target in plan.targets:
            progress.stage(f"warm-up {target.name}")
            await run_batch(target, plan.workload, 1, plan.warmup, timeout=plan.timeout)
    results: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    for level in plan.concurrency:
        rounds: dict[str, list[Batch]] = {t.name: [] for t in plan.targets}
        for number in range(plan.rounds):
            order = plan.targets if number % 2 == 0 else tuple(reversed(plan.targets))
            for target in order:
                progress.stage(f"{target.name} c={level} round {number + 1}/{plan.rounds}")
                batch = await run_batch(
                    target,
                    plan.workload,
                    level,
                    plan.requests,
                    timeout=plan.timeout,
                    on_done=lambda sample: progress.advance(sample.ok),
                )
                rounds[target.name].append(batch)
        summaries = [summarize(rounds[t.name]) for t in plan.targets]
        results += summaries
        comparisons += [compare(summaries[0], other) for other in summaries[1:]]
    return {
        "workload": plan.workload.as_dict(),
        "requests_per_round": requests_per_batch(plan),  # what was sent: whole conversations
        "rounds": plan.rounds,
        "results": results,
        "comparisons": comparisons,
    }


def requests_per_batch(plan: Plan) -> int:
    """Requests one batch sends: `requests` rounded up to whole conversations of `turns` turns."""
    return -(-plan.requests // plan.workload.turns) * plan.workload.turns


def total_requests(plan: Plan) -> int:
    """Requests the progress bar counts (warm-up excluded)."""
    return requests_per_batch(plan) * plan.rounds * len(plan.concurrency) * len(plan.targets)
