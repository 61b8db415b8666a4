"""`rolecall bench`: load any Messages (or OpenAI chat) endpoint and report throughput and latency."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson

from rolecall import __version__
from rolecall.bench.dialects import target
from rolecall.bench.plan import Plan, run_plan, total_requests
from rolecall.bench.progress import ProgressBar
from rolecall.bench.report import render
from rolecall.bench.workload import Workload


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark a Messages or OpenAI chat endpoint (req/s, tok/s, TTFT, ITL)",
        description="Send a fixed workload at one or more concurrency levels. With --compare, a second "
        "target runs in alternating rounds and the ratio of the two is printed.",
    )
    parser.add_argument("url", help="base URL or full endpoint (…/v1/messages or …/v1/chat/completions)")
    parser.add_argument(
        "--api", choices=["anthropic", "openai"], help="dialect (default: from the URL path, else anthropic)"
    )
    parser.add_argument("--api-key", help="sent as x-api-key and as a bearer token")
    parser.add_argument("--model", default="MiniMax-M2.7", help="model name in the requests (default MiniMax-M2.7)")
    parser.add_argument("--name", default="target", help="label of the target in the report")
    parser.add_argument("--compare", metavar="URL", help="a second target, measured in alternating rounds")
    parser.add_argument("--compare-api", choices=["anthropic", "openai"])
    parser.add_argument("--compare-key")
    parser.add_argument("--compare-model", help="model name for the second target (default: --model)")
    parser.add_argument("--compare-name", default="baseline")
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="concurrency levels, run in order (default 1)",
    )
    parser.add_argument("-n", "--requests", type=int, default=16, help="requests per target, level and round")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per level (default 1)")
    parser.add_argument("--warmup", type=int, default=0, help="unmeasured requests per target first")
    parser.add_argument("--prompt-tokens", type=int, default=64, help="approximate first-message length")
    parser.add_argument("--max-tokens", type=int, default=128, help="answer length cap")
    parser.add_argument("--turns", type=int, default=1, help="turns per conversation (history grows each turn)")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="non-streaming requests")
    parser.add_argument(
        "--top-k", type=int, default=1, help="sampling top_k (default 1: greedy, same text on both sides)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON on stdout")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.set_defaults(run=run)


def plan_from(args: argparse.Namespace) -> Plan:
    """The benchmark the arguments describe; ValueError for impossible values."""
    numbers = {
        "--requests": args.requests,
        "--rounds": args.rounds,
        "--turns": args.turns,
        "--max-tokens": args.max_tokens,
        "--prompt-tokens": args.prompt_tokens,
        "--top-k": args.top_k,
    }
    for flag, value in [*numbers.items(), *(("--concurrency", c) for c in args.concurrency)]:
        if value < 1:
            raise ValueError(f"{flag} must be at least 1")
    targets = [target(args.name, args.url, args.api, args.api_key)]
    if args.compare:
        if args.compare_name == args.name:
            raise ValueError("--name and --compare-name must differ")
        targets.append(target(args.compare_name, args.compare, args.compare_api, args.compare_key, args.compare_model))
    workload = Workload(
        prompt_tokens=args.prompt_tokens,
        max_tokens=args.max_tokens,
        stream=args.stream,
        turns=args.turns,
        top_k=args.top_k,
        model=args.model,
    )
    return Plan(
        tuple(targets), workload, tuple(args.concurrency), args.requests, args.rounds, max(args.warmup, 0), args.timeout
    )


def run(args: argparse.Namespace) -> int:
    try:
        plan = plan_from(args)
    except ValueError as exc:
        print(f"rolecall bench: {exc}", file=sys.stderr)
        return 2
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = ProgressBar(total_requests(plan), enabled=show)
    try:
        result = asyncio.run(run_plan(plan, progress))
    finally:
        progress.close()
    result = {"rolecall_version": __version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(result))
    failed = sum(row["errors"] for row in result["results"])
    return 1 if failed and not any(row["completed"] for row in result["results"]) else 0
