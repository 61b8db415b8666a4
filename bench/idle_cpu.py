"""What an idle rolecall spends on its own timers: CPU ms per second of a server that serves nothing.

    .venv/bin/python bench/idle_cpu.py [TREE ...] [--seconds 20] [--rounds 3] [--engine openai embedded]
                                       [--store sqlite postgresql]

Every checkout of rolecall given (default: this one) is started as its own `rolecall serve` process, all at once,
over the same engine, then left alone; each round measures all of them over the same window, so a shared machine's
load falls on every tree alike and a before/after is read from one run (as bench/upstream_ab.py does for load).

- `openai`: an `engine = "openai"` model over bench/zero_cost_upstream.py (upstream_cpu.py's CONFIG): what the
  server's own loops cost (batch runner, keys poll, health probes, uvicorn's tick).
- `embedded`: the default model, the bundled SmolLM2 on the embedded llama.cpp; its worker process is counted too.
- `postgresql`: each tree's store on a PostgreSQL server of its own (tests/support/postgres.py; Debian's
  binaries), whose CPU (all its processes) is reported beside rolecall's: a poll costs on both sides.

The figure is CPU time from /proc per second of wall time: each thread's `schedstat` (nanoseconds on CPU), summed
over the server's threads and those of its children, so a window of seconds still resolves fractions of a ms/s.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import machine, rolecall_server, table
from upstream_cpu import CONFIG, upstream

HERE = Path(__file__).parent


def _threads(pid: int) -> dict[int, int]:
    """ns on CPU of each thread of `pid` and of its descendants (keyed by thread id)."""
    spent: dict[int, int] = {}
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                spent[int(task.name)] = int((task / "schedstat").read_text().split()[0])
                for child in (task / "children").read_text().split():
                    spent |= _threads(int(child))
    return spent


class Meter:
    """CPU of a process tree between two reads. Threads that ended in between are not counted (an idle server
    starts none; aiosqlite's and the workers' threads live as long as the server)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = _threads(pid)
        self._since = time.monotonic()

    def ms_per_second(self) -> float:
        end = _threads(self.pid)
        spent = sum(ns - self._start.get(tid, 0) for tid, ns in end.items())
        return spent / 1e6 / (time.monotonic() - self._since)


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, int]]:
    """A PostgreSQL server of its own with an empty database -> (URL, pid of the tree to meter)."""
    sys.path.insert(0, str(HERE.parent))
    from tests.support.postgres import postgres_server

    with postgres_server() as server:
        url = server.create_database("idle")
        assert server._process is not None
        yield url, server._process.pid


def configs(engine: str, upstream_url: str | None) -> str:
    if engine == "openai":
        return CONFIG.format(upstream=upstream_url)
    return ""  # no models: the default (bundled SmolLM2, embedded llama.cpp)


def _spread(runs: list[float]) -> list[object]:
    return [statistics.median(runs), f"{min(runs):.2f}-{max(runs):.2f}"] if runs else [None, None]


def measure(trees: list[Path], config: str, store: str, args: argparse.Namespace) -> list[list[object]]:
    """Per tree: its server's ms/s idle (median, range) and, on PostgreSQL, its own PostgreSQL server's."""
    with contextlib.ExitStack() as stack:
        meters: dict[Path, dict[str, int]] = {}
        for tree in trees:
            toml, pids = config, {}
            if store == "postgresql":  # one server each: what a tree's polls cost the store is its own
                url, pids["store"] = stack.enter_context(postgres())
                toml = f'database_url = "{url}"\n' + config
            pids["server"] = stack.enter_context(rolecall_server(toml, tree=tree))[1]
            meters[tree] = pids
        time.sleep(args.settle)  # start-up's own work (the first probes, the model's warm-up) is over
        runs: dict[tuple[Path, str], list[float]] = {(tree, n): [] for tree, pids in meters.items() for n in pids}
        for _ in range(args.rounds):
            started = {(tree, name): Meter(pid) for tree, pids in meters.items() for name, pid in pids.items()}
            time.sleep(args.seconds)
            for key, meter in started.items():
                runs[key].append(meter.ms_per_second())
    return [[str(tree), *_spread(runs[tree, "server"]), *_spread(runs.get((tree, "store"), []))] for tree in trees]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="*", type=Path, default=[Path(".")], help="checkouts of rolecall")
    parser.add_argument("--engine", nargs="+", choices=["openai", "embedded"], default=["openai"])
    parser.add_argument("--store", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds left alone after start-up")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    header = ["tree", "engine", "store", "ms CPU / s idle (median)", "range", "its PostgreSQL's ms CPU / s", "range"]
    rows = []
    for engine in args.engine:
        with upstream(0.02) if engine == "openai" else contextlib.nullcontext() as upstream_url:
            for store in args.store:
                for tree, *figures in measure(args.trees, configs(engine, upstream_url), store, args):
                    rows.append([tree, engine, store, *figures])
                    print(table(header, rows[-1:]).splitlines()[-1], flush=True)
    print(table(header, rows))


if __name__ == "__main__":
    main()
