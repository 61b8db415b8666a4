"""What the store adds to a request: the ledger row's group commit (and authentication against the keys held
in memory), measured A/B on one running server over the zero-cost scripted engine.

    .venv/bin/python bench/store_overhead.py [--requests 400] [--concurrency 1 16] [--postgres]

Each request alternates between the real ledger and one that writes nothing, so both halves see the same
machine load; the difference of their latency percentiles is the store's cost. `--postgres` runs a
throw-away PostgreSQL server (tests/support/postgres.py) instead of the SQLite file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.postgres import postgres_server
from tests.support.server import running_server

KEY = "bench-config-key"
BODY = {"model": "scripted", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


class NoLedger:
    """A ledger that writes nothing (the B side)."""

    async def commit(self, record: object, status: int = 200) -> None:
        return None

    def close_record(self, record: object, status: int) -> None:
        return None


@contextlib.contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    if not postgres:
        yield None
        return
    with postgres_server() as server:
        yield server.create_database("bench")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(url: str, app_state: object, requests: int, concurrency: int) -> dict[str, list[float]]:
    runtime = app_state.runtime  # type: ignore[attr-defined]
    real, none = runtime.store.ledger, NoLedger()
    times: dict[str, list[float]] = {"ledger": [], "none": []}
    lock = threading.Lock()
    turn = iter(range(requests))

    def worker() -> None:
        with httpx.Client(headers={"x-api-key": KEY}, timeout=30) as client:
            for i in turn:
                side = "ledger" if i % 2 else "none"
                with lock:
                    runtime.store.ledger = real if side == "ledger" else none
                began = time.perf_counter()
                assert client.post(url + "/v1/messages", json=BODY).status_code == 200
                times[side].append((time.perf_counter() - began) * 1000)

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    runtime.store.ledger = real
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    with tempfile.TemporaryDirectory() as data_dir, database(args.postgres) as database_url:
        settings = Settings(data_dir=Path(data_dir), api_keys=[KEY], database_url=database_url)
        with running_server(settings, registry=registry) as url:
            state = _app_state()
            backend = "PostgreSQL" if args.postgres else "SQLite (WAL, synchronous=NORMAL)"
            print(f"{backend}, {args.requests} requests per concurrency, A/B alternating")
            print("concurrency | p50 none | p50 ledger | +p50 | p99 none | p99 ledger | +p99  (ms)")
            for concurrency in args.concurrency:
                run(url, state, 40, concurrency)  # warm-up
                times = run(url, state, args.requests, concurrency)
                a, b = times["none"], times["ledger"]
                p50a, p50b = statistics.median(a), statistics.median(b)
                p99a, p99b = percentile(a, 99), percentile(b, 99)
                print(
                    f"{concurrency:11d} | {p50a:8.2f} | {p50b:10.2f} | {p50b - p50a:+.2f} | "
                    f"{p99a:8.2f} | {p99b:10.2f} | {p99b - p99a:+.2f}"
                )


def _app_state() -> object:
    """The running app's state: running_server keeps the app to itself, so find it among live objects."""
    apps = [o for o in gc.get_objects() if isinstance(o, FastAPI) and hasattr(o.state, "runtime")]
    return apps[-1].state


if __name__ == "__main__":
    main()
