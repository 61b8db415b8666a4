"""Output tok/s through rolecall vs the same llama.cpp engine alone, in alternating rounds.

    PYTHONPATH=. .venv/bin/python bench/gateway_vs_engine.py [--rounds 3] [--concurrency 1] [--max-tokens 128]

Starts rolecall (embedded engine) and a separate llama.cpp server with the same settings, then streams
the same greedy request to each in turn: Anthropic SSE from rolecall, OpenAI SSE from the engine.
A quick figure until `rolecall bench` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from rolecall.engines.bundled import bundled_gguf
from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.settings import ModelConfig, Settings
from tests.support.server import running_server

PROMPT = "Write a long story about a lighthouse keeper and a storm."


async def one_stream(client: httpx.AsyncClient, url: str, body: dict, anthropic: bool) -> tuple[int, float, float]:
    """(output tokens, seconds to first token, total seconds)."""
    began = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            event = json.loads(data)
            if anthropic:
                if event["type"] == "content_block_delta" and first is None:
                    first = time.perf_counter()
                if event["type"] == "message_delta":
                    tokens = event["usage"]["output_tokens"]
            else:
                choices = event.get("choices") or []
                if choices and choices[0]["delta"].get("content") and first is None:
                    first = time.perf_counter()
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    end = time.perf_counter()
    return tokens, (first or end) - began, end - began


async def round_trip(client, url, body, anthropic, concurrency) -> tuple[float, float]:
    """(aggregate output tok/s, median TTFT ms) for `concurrency` simultaneous streams."""
    began = time.perf_counter()
    results = await asyncio.gather(*(one_stream(client, url, body, anthropic) for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return sum(r[0] for r in results) / elapsed, statistics.median(r[1] for r in results) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp CPU threads (default: all cores)")
    args = parser.parse_args()
    engine = EmbeddedLlamaCpp(bundled_gguf(), context=8192, parallel=4, threads=args.threads, progress=lambda _: None)
    await engine.start()
    engine_url, engine_key = engine.endpoint
    anthropic_body = {"model": "MiniMax-M2.7", "max_tokens": args.max_tokens, "stream": True, "top_k": 1,
                      "messages": [{"role": "user", "content": PROMPT}]}
    openai_body = {"max_tokens": args.max_tokens, "stream": True, "top_k": 1,
                   "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": PROMPT}]}
    try:
        model = ModelConfig(id="smollm2-135m-instruct", aliases=["MiniMax-M2.7"], threads=args.threads)
        with running_server(Settings(models=[model])) as rolecall_url:
            async with httpx.AsyncClient(timeout=300) as client:
                client.headers["authorization"] = f"Bearer {engine_key}"
                ours, theirs, ttft_ours, ttft_theirs = [], [], [], []
                for _ in range(args.rounds):
                    tps, ttft = await round_trip(client, f"{engine_url}/v1/chat/completions", openai_body, False,
                                                 args.concurrency)
                    theirs.append(tps), ttft_theirs.append(ttft)
                    tps, ttft = await round_trip(client, f"{rolecall_url}/v1/messages", anthropic_body, True,
                                                 args.concurrency)
                    ours.append(tps), ttft_ours.append(ttft)
        print(f"concurrency {args.concurrency}, max_tokens {args.max_tokens}, {args.rounds} alternating rounds")
        print(f"  engine alone : {statistics.median(theirs):7.1f} tok/s  TTFT p50 {statistics.median(ttft_theirs):6.1f} ms")
        print(f"  via rolecall : {statistics.median(ours):7.1f} tok/s  TTFT p50 {statistics.median(ttft_ours):6.1f} ms")
        print(f"  ratio        : {statistics.median(ours) / statistics.median(theirs):.3f}")
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
