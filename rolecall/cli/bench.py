"""`rolecall bench`: load any Messages (or OpenAI chat) endpoint and report throughput and latency."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from typing import Any

import orjson
from pydantic import ValidationError

from rolecall import __version__
from rolecall.bench.dialects import Target, target
from rolecall.bench.plan import Plan, run_plan, total_requests
from rolecall.bench.progress import Progress, progress_for
from rolecall.bench.report import render
from rolecall.bench.workload import Workload
from rolecall.cli.bench_engine import EMBEDDED, embedded_engine, embedded_model
from rolecall.service.embedded import EngineStartError
from rolecall.settings import ModelConfig

# Sized for a small machine: the default run (8 requests of up to 64 tokens at concurrency 1) takes
# seconds on 2 cores with the bundled model; scale up with -n, -c and --max-tokens.
_DEFAULT_REQUESTS = 8
_DEFAULT_MAX_TOKENS = 64


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark a Messages or OpenAI chat endpoint (req/s, tok/s, TTFT, ITL)",
        description="Send a fixed workload at one or more concurrency levels. With --compare, a second "
        "target runs in alternating rounds and the ratio of the two is printed; --compare embedded starts "
        "the llama.cpp engine rolecall would run for --model and measures it directly.",
    )
    add = parser.add_argument
    add("url", help="base URL or full endpoint (…/v1/messages or …/v1/chat/completions)")
    add("--api", choices=["anthropic", "openai"], help="dialect (default: from the URL path, else anthropic)")
    add("--api-key", metavar="KEY", help="sent as x-api-key and as a bearer token (default: none)")
    add("--model", metavar="NAME", default="MiniMax-M2.7", help="model name in the requests (default: %(default)s)")
    add("--name", metavar="NAME", default="target", help="label of the target in the report (default: %(default)s)")
    add(
        "--compare",
        metavar="URL|embedded",
        help="a second target, measured in alternating rounds; `embedded`: the llama.cpp engine rolecall "
        "would start for --model (from --config), started here",
    )
    add("--compare-api", choices=["anthropic", "openai"], help="dialect of the second target (default: from its URL)")
    add("--compare-key", metavar="KEY", help="API key of the second target (default: none)")
    add("--compare-model", metavar="NAME", help="model name for the second target (default: --model)")
    add(
        "--compare-name",
        metavar="NAME",
        help="label of the second target (default: baseline, or llama.cpp with embedded)",
    )
    add(
        "--config",
        metavar="FILE",
        help="rolecall config whose model --compare embedded starts (default: ROLECALL_CONFIG, else the bundled model)",
    )
    add(
        "-c",
        "--concurrency",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="concurrency levels, run in order (default: 1)",
    )
    add(
        "-n",
        "--requests",
        metavar="N",
        type=int,
        default=_DEFAULT_REQUESTS,
        help="requests per target, level and round (default: %(default)s)",
    )
    add("--rounds", metavar="N", type=int, default=1, help="alternating rounds per level (default: %(default)s)")
    add(
        "--warmup", metavar="N", type=int, default=0, help="unmeasured requests per target first (default: %(default)s)"
    )
    add(
        "--prompt-tokens",
        metavar="N",
        type=int,
        default=64,
        help="approximate first-message length (default: %(default)s)",
    )
    add(
        "--max-tokens",
        metavar="N",
        type=int,
        default=_DEFAULT_MAX_TOKENS,
        help="answer length cap (default: %(default)s)",
    )
    add(
        "--turns",
        metavar="N",
        type=int,
        default=1,
        help="turns per conversation, the history growing (default: %(default)s)",
    )
    add("--no-stream", dest="stream", action="store_false", help="non-streaming requests (default: streaming)")
    add(
        "--top-k",
        metavar="K",
        type=int,
        default=1,
        help="sampling top_k (default: %(default)s, greedy: same text on both sides)",
    )
    add("--timeout", metavar="SECONDS", type=float, default=300.0, help="seconds per request (default: %(default)s)")
    add("--json", action="store_true", help="print the full result as JSON on stdout (default: a table)")
    add(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr: --progress a bar, --no-progress none (default: a bar on a terminal, "
        "else a plain line every 10 s)",
    )
    parser.set_defaults(run=run)


def plan_from(args: argparse.Namespace) -> Plan:
    """The benchmark the arguments describe; ValueError for impossible values. With `--compare embedded`
    the second target's URL and key are filled in once its engine runs."""
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
        embedded = args.compare == EMBEDDED
        name = args.compare_name or ("llama.cpp" if embedded else "baseline")
        if name == args.name:
            raise ValueError("--name and --compare-name must differ")
        if embedded:
            targets.append(Target(name, "", "openai", None, args.compare_model))
        else:
            targets.append(target(name, args.compare, args.compare_api, args.compare_key, args.compare_model))
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
        engine = embedded_model(args.config, args.model) if args.compare == EMBEDDED else None
    except (ValueError, OSError, ValidationError) as exc:
        print(f"rolecall bench: {exc}", file=sys.stderr)
        return 2
    progress = progress_for(total_requests(plan), args.progress)
    try:
        result = asyncio.run(_measure(plan, progress, engine))
    except (EngineStartError, OSError) as exc:
        print(f"rolecall bench: the embedded engine did not start: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    result = {"rolecall_version": __version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(result))
    return _exit_code(result)


async def _measure(plan: Plan, progress: Progress, engine: ModelConfig | None) -> dict[str, Any]:
    if engine is None:
        return await run_plan(plan, progress)

    def say(line: str) -> None:
        print(f"bench: {line.strip()}", file=sys.stderr, flush=True)

    async with embedded_engine(engine, say) as (url, key):
        first, baseline = plan.targets
        plan = dataclasses.replace(plan, targets=(first, dataclasses.replace(baseline, url=url, api_key=key)))
        return await run_plan(plan, progress)


def _exit_code(result: dict[str, Any]) -> int:
    """1 when some target failed every request it was sent (at every level): its figures mean nothing."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in result["results"]:
        rows.setdefault(row["target"], []).append(row)
    failed = [name for name, found in rows.items() if not any(row["completed"] for row in found)]
    for name in failed:
        errors = next((e for row in rows[name] for e in row["error_samples"]), "no answer")
        print(f"rolecall bench: every request to {name} failed ({errors})", file=sys.stderr)
    return 1 if failed else 0
