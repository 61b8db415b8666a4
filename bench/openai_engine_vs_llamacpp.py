"""rolecall with the `openai` engine vs the very llama.cpp server it forwards to, at concurrency 1, 8, 32.

    .venv/bin/python bench/openai_engine_vs_llamacpp.py [--rounds 3] [--requests 16] [-c 1 8 32]

One llama.cpp server; three targets in alternating rounds over it: rolecall's /v1/messages
(openai engine, upstream = that server), the server's own /v1/chat/completions and its own
/v1/messages. One engine serves all three, so the ratios are the gateway's cost alone.
"""

from __future__ import annotations

import argparse
import asyncio

from embedded_vs_llamacpp import report
from harness import BENCH_KEY, llamacpp_server, machine, rolecall_server

from rolecall.bench.dialects import target
from rolecall.bench.plan import Plan, run_plan, total_requests
from rolecall.bench.progress import ProgressBar
from rolecall.bench.workload import Workload

# The `openai` engine (issue #4): the upstream's key comes from the environment variable named here;
# the name sent upstream defaults to the first of its /v1/models.
CONFIG = """
[[models]]
id = "smollm2-135m-instruct"
aliases = ["MiniMax-M2.7"]
engine = "openai"
upstreams = ["{upstream}"]
api_key_env = "BENCH_UPSTREAM_KEY"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16, help="per target, level and round")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=32, help="llama.cpp slots")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with llamacpp_server(context=512 * args.parallel, parallel=args.parallel, threads=args.threads) as (url, key):
        with rolecall_server(CONFIG.format(upstream=url), env={"BENCH_UPSTREAM_KEY": key}) as (ours, _):
            plan = Plan(
                targets=(
                    target("rolecall", ours, "anthropic", BENCH_KEY),
                    target("llama.cpp chat", url, "openai", key),
                    target("llama.cpp messages", url, "anthropic", key),
                ),
                workload=Workload(prompt_tokens=args.prompt_tokens, max_tokens=args.max_tokens),
                concurrency=tuple(args.concurrency),
                requests=args.requests,
                rounds=args.rounds,
                warmup=2,
            )
            result = asyncio.run(run_plan(plan, ProgressBar(total_requests(plan), enabled=True)))
    print()
    print(report(result))


if __name__ == "__main__":
    main()
