"""TTFT per turn over a 10-turn conversation: the prefix cache at work.

    .venv/bin/python bench/multi_turn_ttft.py [--conversations 4] [--turns 10] [--max-tokens 48]

Each turn resends the whole history plus one new user message; llama.cpp's prompt cache should keep
TTFT nearly flat as the history grows. rolecall (embedded engine) and a bare llama.cpp server with
the same settings run in alternating rounds; `cache_read_input_tokens` is what rolecall reports read.
"""

from __future__ import annotations

import argparse
import asyncio

from harness import BENCH_KEY, llamacpp_server, machine, rolecall_server, table

from rolecall.bench.dialects import target
from rolecall.bench.plan import Plan, run_plan, total_requests
from rolecall.bench.progress import ProgressBar
from rolecall.bench.workload import Workload

CONFIG = """
[[models]]
id = "smollm2-135m-instruct"
aliases = ["MiniMax-M2.7"]
context = 8192
parallel = 2
threads = {threads}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=4, help="per target and round")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads on each side")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with llamacpp_server(context=8192, parallel=2, threads=args.threads) as (engine_url, engine_key):
        with rolecall_server(CONFIG.format(threads=args.threads)) as (rolecall_url, _):
            plan = Plan(
                targets=(
                    target("rolecall", rolecall_url, "anthropic", BENCH_KEY),
                    target("llama.cpp", engine_url, "openai", engine_key),
                ),
                workload=Workload(prompt_tokens=200, max_tokens=args.max_tokens, turns=args.turns),
                concurrency=(1,),
                requests=args.conversations * args.turns,
                rounds=args.rounds,
                warmup=1,
            )
            result = asyncio.run(run_plan(plan, ProgressBar(total_requests(plan), enabled=True)))
    print()
    rows = [[turn + 1, *(row["ttft_ms_by_turn"][turn] for row in result["results"])] for turn in range(args.turns)]
    print(table(["turn", *(f"{row['target']} TTFT p50 ms" for row in result["results"])], rows))


if __name__ == "__main__":
    main()
