"""What per-key limits add to a request: a store key with every limit against a store key without any (and
the config file's key), on the same `rolecall serve` over the zero-cost scripted engine, on SQLite and on
PostgreSQL.

    .venv/bin/python bench/limits_overhead.py [--requests 1000] [--postgres postgresql://…]

Requests go one at a time, rotating over the three keys, so all see the same machine; the difference of the
two store keys' medians is the limits' cost (admission before the generation, the tokens counted at its end).
Also timed: the limiter alone (admit + finish) in this process, over the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from harness import BENCH_KEY, machine, rolecall_server, table

from rolecall.core.caller import Caller, KeyLimits
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.limits import Limiter
from rolecall.service.registry import ServedModel
from rolecall.service.runtime import MIGRATIONS
from rolecall.store.counters import StoreCounters
from rolecall.store.database import Database
from rolecall.store.keys import KeyStore

CONFIG = '[[models]]\nid = "scripted"\nengine = "scripted"\n'
BODY = {"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hello."}]}
# Every limit, none of them reached.
LIMITS = KeyLimits(
    requests_per_minute=10**7,
    tokens_per_minute=10**9,
    concurrency=1000,
    quota_tokens=10**12,
    quota_window_seconds=5 * 3600,
    models=("scripted*",),
)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_keys(url: str) -> tuple[str, str]:
    """A store key without limits and one with every limit."""
    database = await Database.open(url, MIGRATIONS)
    try:
        store, suffix = KeyStore(database), time.time_ns()
        free = (await store.create(f"bench-free-{suffix}", KeyLimits()))[1]
        return free, (await store.create(f"bench-limited-{suffix}", LIMITS))[1]
    finally:
        await database.close()


async def limiter_alone(url: str, requests: int) -> list[float]:
    """Milliseconds per admit + finish of one limited key, through the store's counters."""
    database = await Database.open(url, MIGRATIONS)
    limiter = Limiter(StoreCounters(database))
    model = ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")
    caller = Caller("bench", f"bench-alone-{time.time_ns()}", LIMITS)
    samples = []
    try:
        for _ in range(requests):
            began = time.perf_counter()
            ticket = await limiter.admit(caller, "scripted", model)
            await ticket.finish(20)
            samples.append((time.perf_counter() - began) * 1000)
    finally:
        await limiter.close()
        await database.close()
    return samples


def end_to_end(database_url: str, requests: int) -> dict[str, list[float]]:
    """Milliseconds per request with each key (the config key, a store key without and one with limits)."""
    samples: dict[str, list[float]] = {"config": [], "store": [], "limited": []}
    with rolecall_server(CONFIG, env={"ROLECALL_DATABASE_URL": database_url}) as (url, _pid):
        free, limited = asyncio.run(create_keys(database_url))
        keys = {"config": BENCH_KEY, "store": free, "limited": limited}
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 10
            while client.get("/v1/models", headers={"x-api-key": limited}).status_code != 200:  # keys reload each 1 s
                if time.monotonic() > deadline:
                    raise RuntimeError("the server never saw the new keys")
                time.sleep(0.1)
            for i in range(requests // 10 + requests):
                for name, key in keys.items():
                    began = time.perf_counter()
                    response = client.post("/v1/messages", json=BODY, headers={"x-api-key": key})
                    elapsed = (time.perf_counter() - began) * 1000
                    assert response.status_code == 200, response.text
                    if i >= requests // 10:  # the first tenth warms up
                        samples[name].append(elapsed)
    return samples


def _p50_p99(samples: list[float]) -> str:
    return f"{statistics.median(samples):.2f} / {percentile(samples, 0.99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--postgres", help="a PostgreSQL database URL to measure too")
    args = parser.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        backends = [("SQLite", f"sqlite:///{Path(scratch) / 'rolecall.db'}")]
        if args.postgres:
            backends.append(("PostgreSQL", args.postgres))
        for name, url in backends:
            alone = asyncio.run(limiter_alone(url, args.requests))
            measured = end_to_end(url, args.requests)
            added = statistics.median(measured["limited"]) - statistics.median(measured["store"])
            rows.append(
                [
                    name,
                    f"{statistics.median(alone):.3f} / {percentile(alone, 0.99):.3f}",
                    *(_p50_p99(measured[key]) for key in ("config", "store", "limited")),
                    f"{added:+.2f}",
                ]
            )
    header = [
        "store",
        "limiter alone p50 / p99 ms",
        "config key p50 / p99 ms",
        "store key, no limits",
        "store key, every limit",
        "limits add (p50 ms)",
    ]
    print(table(header, rows))


if __name__ == "__main__":
    main()
