"""Server memory: rolecall's RSS after 10 requests, after 1,000, and after 5,000 (target: +10 % at most
from 10 to 1,000).

    .venv/bin/python bench/memory.py [--engine scripted|embedded] [--requests 1000 5000]

Half the requests stream, half do not. The RSS is the API process's alone (the embedded engine is
a child process with its own memory, mostly the model and its KV cache).
"""

from __future__ import annotations

import argparse
import asyncio

from harness import BENCH_KEY, machine, rolecall_server, rss_kib, table

from rolecall.bench.dialects import target
from rolecall.bench.runner import run_batch
from rolecall.bench.workload import Workload

CONFIGS = {
    "scripted": '[[models]]\nid = "scripted"\naliases = ["MiniMax-M2.7"]\nengine = "scripted"\n',
    "embedded": '[[models]]\nid = "smollm2-135m-instruct"\naliases = ["MiniMax-M2.7"]\nparallel = 8\nthreads = 1\n',
}


async def load(url: str, requests: int, max_tokens: int) -> int:
    """`requests` requests, half streamed; returns how many failed."""
    ours = target("rolecall", url, "anthropic", BENCH_KEY)
    failed = 0
    for stream in (True, False):
        workload = Workload(prompt_tokens=32, max_tokens=max_tokens, stream=stream)
        batch = await run_batch(ours, workload, 8, requests // 2)
        failed += sum(not s.ok for s in batch.samples)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=sorted(CONFIGS), default="scripted")
    parser.add_argument("--requests", type=int, nargs="+", default=[1000, 5000], help="checkpoints after the first 10")
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with rolecall_server(CONFIGS[args.engine]) as (url, pid):
        done = 0
        for checkpoint in [10, *args.requests]:
            failed = asyncio.run(load(url, checkpoint - done, args.max_tokens))
            done = checkpoint
            rows.append([done, rss_kib(pid) / 1024, failed])
            print(f"after {done} requests: RSS {rows[-1][1]:.1f} MiB, {failed} failed", flush=True)
    base = rows[0][1]
    print(
        table(
            ["requests served", "RSS MiB", "failed", "growth vs 10"],
            [[n, rss, failed, f"{100 * (rss - base) / base:+.1f} %"] for n, rss, failed in rows],
        )
    )


if __name__ == "__main__":
    main()
