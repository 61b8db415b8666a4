"""Interactive TTFT with and without a message batch running on the same engine (issue #12's priority target:
at most 1.5x).

    .venv/bin/python bench/batch_priority.py [--rounds 2] [--requests 16] [-c 1 2] [--think 1] [--batch-concurrency 1]
        [--workers 1] [--tree PATH]

One `rolecall serve` with the bundled model. Rounds alternate: interactive streaming requests alone, then the
same requests while a batch of long requests (by default a ~550-token prompt, up to 256 tokens out each) is in
progress; the batch is canceled after each loaded round. Interactive clients pause `--think` seconds between
requests (0: back to back, which leaves a batch no quiet spell to start in). Prints TTFT p50/p95 of both, their ratio,
and how many batch requests ended while the interactive load ran.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

from harness import BENCH_KEY, machine, rolecall_server, table

from rolecall.bench.dialects import target
from rolecall.bench.runner import run_batch
from rolecall.bench.workload import Workload
from rolecall.core.batches import BatchItem
from rolecall.core.caller import Caller
from rolecall.service.batches import BatchDesk
from rolecall.service.runtime import MIGRATIONS
from rolecall.store.database import Database

CONFIG = """
batch_concurrency = {batch_concurrency}
workers = {workers}
[[models]]
id = "smollm2-135m-instruct"
aliases = ["MiniMax-M2.7"]
context = 8192
parallel = 4
threads = {threads}
"""

# The bench key's owner label, as the server names a key from its config file.
OWNER = Caller(hashlib.sha256(BENCH_KEY.encode()).hexdigest()[:8])
SENTENCE = "The lighthouse keeper wrote down every ship that passed in the storm."  # 13 words


async def _batch(database: Database, batch_id: str, items: int, sentences: int) -> None:
    body = {"model": "MiniMax-M2.7", "max_tokens": 256, "top_k": 1}
    prompt = " ".join([SENTENCE] * sentences)
    requests = [
        BatchItem(f"r{i}", body | {"messages": [{"role": "user", "content": f"[{batch_id} {i}] {prompt}"}]})
        for i in range(items)
    ]
    await BatchDesk.on(database).create(OWNER, batch_id, requests)


async def _ended(database: Database, batch_id: str) -> int:
    record = await BatchDesk.on(database).get(None, batch_id)
    counts = record.counts
    return counts.succeeded + counts.errored


async def _cancel(database: Database, batch_id: str) -> None:
    await BatchDesk.on(database).cancel(None, batch_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=16, help="interactive requests per level and round")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-concurrency", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-sentences", type=int, default=30, help="batch prompt: 13-word sentences")
    parser.add_argument("--think", type=float, default=1.0, help="seconds each client pauses between requests")
    parser.add_argument("--workers", type=int, default=1, help="`rolecall serve --workers N` (the runner is in one)")
    parser.add_argument("--tree", type=Path, help="run the rolecall of this checkout (default: the installed one)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'rolecall.db'}"
        config = CONFIG.format(batch_concurrency=args.batch_concurrency, threads=args.threads, workers=args.workers)
        with rolecall_server(config, env={"ROLECALL_DATABASE_URL": url}, tree=args.tree) as (rolecall_url, _):
            rows = asyncio.run(_measure(args, rolecall_url, url))
    header = ["c", "TTFT p50 alone", "p50 with batch", "ratio p50", "p95 alone", "p95 with batch", "batch ended"]
    print()
    print(table(header, rows))


async def _measure(args: argparse.Namespace, rolecall_url: str, store_url: str) -> list[list[object]]:
    database = await Database.open(store_url, MIGRATIONS)
    alone: dict[int, list[float]] = {c: [] for c in args.concurrency}
    loaded: dict[int, list[float]] = {c: [] for c in args.concurrency}
    ended: dict[int, int] = dict.fromkeys(args.concurrency, 0)
    try:
        for number in range(args.rounds):
            for c in args.concurrency:
                alone[c] += await _ttfts(args, rolecall_url, c, f"alone{number}")
                batch_id = f"msgbatch_{number}_{c}_{time.time_ns()}"
                await _batch(database, batch_id, 200, args.batch_sentences)
                await asyncio.sleep(2.0)  # its first requests are running
                before = await _ended(database, batch_id)
                loaded[c] += await _ttfts(args, rolecall_url, c, f"batch{number}")
                ended[c] += await _ended(database, batch_id) - before
                await _cancel(database, batch_id)
                await asyncio.sleep(3.0)  # the running ones finish
    finally:
        await database.close()
    rows = []
    for c in args.concurrency:
        a, b = _percentiles(alone[c]), _percentiles(loaded[c])
        rows.append([c, a[0], b[0], round(b[0] / a[0], 2), a[1], b[1], ended[c]])
    return rows


async def _ttfts(args: argparse.Namespace, url: str, concurrency: int, tag: str) -> list[float]:
    """The TTFT (ms) of `--requests` streamed requests from `concurrency` clients, each pausing `--think` seconds
    between its requests as a person reading the reply would (one warm-up request first)."""
    chat = target(f"rolecall-{tag}", url, "anthropic", BENCH_KEY)
    workload = Workload(prompt_tokens=64, max_tokens=args.max_tokens)
    await run_batch(chat, workload, 1, 1)

    async def client() -> list[float]:
        ttfts = []
        for _ in range(args.requests // concurrency):
            batch = await run_batch(chat, workload, 1, 1)
            ttfts += [s.ttft * 1000 for s in batch.samples if s.ok and s.ttft is not None]
            await asyncio.sleep(args.think)
        return ttfts

    return [ttft for ttfts in await asyncio.gather(*(client() for _ in range(concurrency))) for ttft in ttfts]


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    main()
