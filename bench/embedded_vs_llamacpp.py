"""rolecall's embedded engine vs a separate llama.cpp server with the same model and settings.

    .venv/bin/python bench/embedded_vs_llamacpp.py [--rounds 3] [--requests 8] [-c 1 8] [--max-tokens 128]

Both stream the same greedy requests in alternating rounds: Anthropic SSE from rolecall, OpenAI SSE
from llama.cpp's own /v1/chat/completions. Prints a markdown table and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio

from harness import BENCH_KEY, llamacpp_server, machine, rolecall_server, table

from rolecall.bench.dialects import target
from rolecall.bench.plan import Plan, run_plan, total_requests
from rolecall.bench.progress import ProgressBar
from rolecall.bench.workload import Workload

# Two engines share the machine here, so this measures rolecall's whole stack against llama.cpp's;
# openai_engine_vs_llamacpp.py isolates the gateway's own cost over one engine.

CONFIG = """
[[models]]
id = "smollm2-135m-instruct"
aliases = ["MiniMax-M2.7"]
context = {context}
parallel = {parallel}
threads = {threads}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=8, help="per target, level and round")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=8, help="llama.cpp slots on both sides")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads on each side (1: two engines on a shared 2-core machine "
        "spin against each other otherwise)",
    )
    args = parser.parse_args()
    context = 1024 * args.parallel
    print(f"machine: {machine()}")
    with llamacpp_server(context=context, parallel=args.parallel, threads=args.threads) as (engine_url, engine_key):
        config = CONFIG.format(context=context, parallel=args.parallel, threads=args.threads)
        with rolecall_server(config) as (rolecall_url, _):
            plan = Plan(
                targets=(
                    target("rolecall", rolecall_url, "anthropic", BENCH_KEY),
                    target("llama.cpp", engine_url, "openai", engine_key),
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


def report(result: dict) -> str:
    rows = [
        [
            r["target"],
            r["concurrency"],
            r["completed"],
            r["errors"],
            r["output_throughput"],
            f"{r['output_throughput_spread'][0]:.1f}-{r['output_throughput_spread'][1]:.1f}",
            *_ms(r["ttft_ms"], "p50", "p90"),
            *_ms(r["itl_ms"], "p50", "p99"),
            r["mean_output_tokens"],
        ]
        for r in result["results"]
    ]
    main_table = table(
        [
            "target",
            "conc",
            "ok",
            "err",
            "out tok/s (median)",
            "per-round range",
            "TTFT p50 ms",
            "TTFT p90 ms",
            "ITL p50 ms",
            "ITL p99 ms",
            "tokens/answer",
        ],
        rows,
    )
    ratios = table(
        ["target / baseline", "concurrency", "tok/s ratio (median of rounds)", "per round", "TTFT p50 overhead ms"],
        [
            [
                f"{c['target']} / {c['baseline']}",
                c["concurrency"],
                c["output_throughput_ratio"],
                ", ".join(f"{r:.3f}" for r in c["output_throughput_ratio_per_round"] if r is not None),
                c["ttft_p50_delta_ms"],
            ]
            for c in result["comparisons"]
        ],
    )
    errors = [
        f"{r['target']} c={r['concurrency']}: {count} x {error}"
        for r in result["results"]
        for error, count in r["error_samples"].items()
    ]
    return "\n\n".join([main_table, ratios, *(["errors:\n" + "\n".join(errors)] if errors else [])])


def _ms(figures: dict | None, *keys: str) -> list[float | None]:
    return [figures[k] if figures else None for k in keys]


if __name__ == "__main__":
    main()
