"""Streamed requests per second with `--workers 1` and `--workers 2` (3, 4, ...), in front of a zero-cost
upstream, with every CPU second of each run accounted for; plus the cost of one admission round trip over the
coordinator channel.

    .venv/bin/python bench/workers.py [--workers 1 2] [-c 32] [--seconds 10] [--repeat 3] [--tokens 256]
                                      [--client wrk|python] [--max-in-flight 16] [--accounts]
    .venv/bin/python bench/workers.py --channel          # µs per admit + release over the coordinator

The upstream (bench/zero_cost_upstream.py in bursts, its own process) answers every chat request with the
whole 256-token stream in one write of bytes built once, so rolecall's own work is all there is to wait for.
The load comes from wrk (C, one thread, no Lua per response; `make bench-tools`) or, without it, from a lean
uvloop client in this process that only splits HTTP (httptools) and counts messages. Both keep `-c`
connections alive and send the next request as soon as the previous answer ends.

CPU time is read from /proc per process (bench/cpu_account.py): rolecall's parent and each worker, the
upstream, the load generator, and what else the machine ran meanwhile. "µs CPU / token" is rolecall's
(parent + workers) CPU per streamed token. `--accounts` prints the per-process table of every row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httptools
import httpx
from cpu_account import IDLE, OTHERS, Snapshot, rolecall_processes
from harness import BENCH_KEY, PYTHON, free_port, machine, rolecall_server, table

CONFIG = """
workers = {workers}
queue_length = 1024
{slots}
[[models]]
id = "zero-cost"
aliases = ["MiniMax-M2.7"]
engine = "openai"
upstreams = ["{upstream}"]
context = 8192
"""
HERE = Path(__file__).parent
UPSTREAM = "upstream"
CLIENT = "load generator"


# --- the zero-cost upstream -----------------------------------------------------------------------------------


@contextlib.contextmanager
def upstream() -> Iterator[tuple[str, int]]:
    """bench/zero_cost_upstream.py in bursts (every answer in one write of prebuilt bytes, vLLM-shaped: the
    prompt's size on every chunk, so rolecall never asks to count it) in its own process -> (URL, pid)."""
    port = free_port()
    command = [PYTHON, str(HERE / "zero_cost_upstream.py"), "--port", str(port), "--pace", "0"]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the zero-cost upstream did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


# --- the load generators --------------------------------------------------------------------------------------


def _body(tokens: int) -> str:
    return json.dumps(
        {"model": "MiniMax-M2.7", "max_tokens": tokens, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    )


def check_answer(url: str, tokens: int) -> None:
    """One streamed message, read whole: wrk counts statuses only, so the stream's content is checked here."""
    headers = {"x-api-key": BENCH_KEY, "content-type": "application/json"}
    answer = httpx.post(url + "/v1/messages", content=_body(tokens), headers=headers, timeout=30)
    usage = f'"output_tokens":{tokens}'
    if answer.status_code != 200 or "message_stop" not in answer.text or usage not in answer.text.replace(" ", ""):
        raise RuntimeError(f"bad answer {answer.status_code}: {answer.text[-300:]!r}")


@dataclass
class Run:
    messages: int
    seconds: float
    client_cpu: float  # the load generator's CPU seconds


def wrk_load(url: str, *, concurrency: int, seconds: float, tokens: int, script: Path) -> Run:
    """wrk, one thread; its CPU is its rusage once reaped."""
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["x-api-key"] = "{BENCH_KEY}"\nwrk.body = {json.dumps(_body(tokens))}\n'
    )
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), url + "/v1/messages"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures:\n{out}")
    count = out.split(" requests in ")[0].split()[-1]
    span = out.split(" requests in ")[1].split(",")[0]
    return Run(int(count), float(span.removesuffix("s")) if span.endswith("s") else seconds, cpu)


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the lean client: splits HTTP, counts messages, checks each one's end."""

    def __init__(self, request: bytes, until: float, finished: asyncio.Future[int]) -> None:
        self._request = request
        self._until = until
        self._finished = finished
        self._parser = httptools.HttpResponseParser(self)
        self._tail = b""
        self.done = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.Transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self._tail = data[-64:] if len(data) >= 64 else (self._tail + data)[-64:]
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() != 200 or b"message_stop" not in self._tail:
            self._end(RuntimeError(f"bad answer {self._parser.get_status_code()}: {self._tail!r}"))
            return
        self.done += 1
        if time.monotonic() < self._until:
            self._transport.write(self._request)
        else:
            self._end(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or RuntimeError("the server closed the connection"))

    def _end(self, error: Exception | None) -> None:
        if not self._finished.done():
            if error is None:
                self._finished.set_result(self.done)
            else:
                self._finished.set_exception(error)
        self._transport.close()


def python_load(url: str, *, concurrency: int, seconds: float, tokens: int) -> Run:
    """The lean uvloop client, in this process; its CPU is this process's."""
    import uvloop

    host, port = url.removeprefix("http://").split(":")
    body = _body(tokens).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"x-api-key: {BENCH_KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body

    async def load() -> int:
        loop = asyncio.get_running_loop()
        until = time.monotonic() + seconds
        finished = [loop.create_future() for _ in range(concurrency)]
        for future in finished:
            await loop.create_connection(lambda f=future: _Connection(request, until, f), host, int(port))
        return sum(await asyncio.gather(*finished))

    before, began = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    messages = uvloop.run(load())
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - began
    return Run(messages, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


# --- one row: several measured runs ---------------------------------------------------------------------------


@dataclass
class Measured:
    rate: float  # streamed messages per second
    per_token: float  # µs of rolecall CPU (parent + workers) per streamed token
    per_message: dict[str, float]  # ms of CPU per message, per process, then the rest of the machine
    cores: dict[str, float]  # the same as a share of the machine's cores (1.0 = one core)


def measure(url: str, pids: dict[str, int], args: argparse.Namespace, scratch: Path) -> Measured:
    def load(seconds: float) -> Run:
        if args.client == "wrk":
            return wrk_load(
                url, concurrency=args.concurrency, seconds=seconds, tokens=args.tokens, script=scratch / "post.lua"
            )
        return python_load(url, concurrency=args.concurrency, seconds=seconds, tokens=args.tokens)

    before, began = Snapshot.take(pids), time.monotonic()
    run = load(args.seconds)
    spent = Snapshot.take(pids, {CLIENT: run.client_cpu}).spent_since(before)
    window = time.monotonic() - began
    rolecall = sum(cpu for name, cpu in spent.items() if name not in (UPSTREAM, CLIENT, OTHERS, IDLE))
    cores = {name: cpu / window for name, cpu in spent.items()}
    return Measured(
        run.messages / run.seconds,
        rolecall / (run.messages * args.tokens) * 1e6,
        {name: cpu / run.messages * 1e3 for name, cpu in spent.items()},
        cores,
    )


def measure_workers(workers: int, upstream_url: str, upstream_pid: int, args: argparse.Namespace) -> list[Measured]:
    slots = f"max_in_flight = {args.max_in_flight}" if args.max_in_flight else ""
    with (
        rolecall_server(CONFIG.format(workers=workers, upstream=upstream_url, slots=slots)) as (url, pid),
        tempfile.TemporaryDirectory() as scratch,
    ):
        check_answer(url, args.tokens)
        warm = argparse.Namespace(**{**vars(args), "seconds": 2.0})
        measure(url, {}, warm, Path(scratch))  # warm-up: connections, caches, every worker started
        pids = {**rolecall_processes(pid), UPSTREAM: upstream_pid}
        if workers > 1 and sum(name.startswith("worker") for name in pids) != workers:
            raise RuntimeError(f"expected {workers} workers, found {pids}")
        runs = []
        for _ in range(args.repeat):
            runs.append(measure(url, pids, args, Path(scratch)))
            others, idle = runs[-1].cores[OTHERS], runs[-1].cores[IDLE]
            print(
                f"  run: {workers} worker(s), {runs[-1].rate:.1f} msg/s, {runs[-1].per_token:.1f} µs CPU / token; "
                f"meanwhile other processes used {others:.2f} cores, {idle:.2f} idle",
                flush=True,
            )
        return runs


def accounts(workers: int, runs: list[Measured]) -> str:
    """Per process: ms CPU per message and share of the cores, median (range) over the runs."""
    rows = []
    for name in runs[0].per_message:
        per_message = [run.per_message[name] for run in runs]
        cores = [run.cores[name] for run in runs]
        rows.append(
            [
                name,
                f"{statistics.median(per_message):.3f} ({min(per_message):.3f}-{max(per_message):.3f})",
                f"{statistics.median(cores):.2f} ({min(cores):.2f}-{max(cores):.2f})",
            ]
        )
    return f"{workers} worker(s):\n" + table(["process", "ms CPU / message", "cores"], rows)


# --- the channel's own cost -----------------------------------------------------------------------------------


async def _channel(rounds: int, *, contended: bool) -> tuple[float, float]:
    """µs (wall, CPU) per admit + release pair, both ends in this process: with a spare slot kept by the
    worker (no message), or contended (every slot through the coordinator: one round trip and one message)."""
    from rolecall.service.workers.coordinator import Coordinator
    from rolecall.service.workers.link import CoordinatorLink, SharedAdmission

    with tempfile.TemporaryDirectory(prefix="rolecall-") as folder:
        coordinator = Coordinator(Path(folder) / "coordinator.sock")
        await coordinator.start()
        link = CoordinatorLink(coordinator.path, 1)
        await link.connect({"m": [64, 64, 30.0]}, lambda: "")
        gate = SharedAdmission(link, {"m": 64}).gate("m")
        busy = await gate.enter()  # one request in flight, so the worker keeps a spare
        if contended:
            gate.contend()
        for _ in range(1000):
            (await gate.enter()).release()
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            (await gate.enter()).release()
        wall, used = time.perf_counter() - began, time.process_time() - cpu
        busy.release()
        await link.close()
        await coordinator.close()
    return wall / rounds * 1e6, used / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument(
        "--max-in-flight", type=int, help="slots per model (fewer than -c: requests queue, workers contend)"
    )
    parser.add_argument("--accounts", action="store_true", help="print where every CPU second went, per row")
    parser.add_argument("--channel", action="store_true", help="measure the coordinator round trip only")
    args = parser.parse_args()
    print(f"machine: {machine()}; load generator: {args.client}")
    if args.channel:
        for contended, what in ((False, "a spare slot, no message"), (True, "contended, through the coordinator")):
            runs = [asyncio.run(_channel(20_000, contended=contended)) for _ in range(args.repeat)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            wall = f"{statistics.median(walls):.1f} µs ({min(walls):.1f}-{max(walls):.1f})"
            cpu = f"{statistics.median(cpus):.1f} µs ({min(cpus):.1f}-{max(cpus):.1f})"
            print(f"admit + release, {what} (both ends in one process): wall {wall}, CPU {cpu}")
        return
    rows, details = [], []
    with upstream() as (upstream_url, upstream_pid):
        for workers in args.workers:
            runs = measure_workers(workers, upstream_url, upstream_pid, args)
            rates, costs = [run.rate for run in runs], [run.per_token for run in runs]
            rows.append(
                [
                    workers,
                    args.concurrency,
                    statistics.median(rates),
                    f"{min(rates):.0f}-{max(rates):.0f}",
                    statistics.median(costs),
                    f"{min(costs):.1f}-{max(costs):.1f}",
                ]
            )
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
            if args.accounts:
                details.append(accounts(workers, runs))
                print(details[-1], flush=True)
    print(table(HEADER, rows))
    for detail in details:
        print(detail)


HEADER = ["workers", "c", "streamed msg/s (median)", "range", "µs CPU / token (median)", "range"]


if __name__ == "__main__":
    sys.exit(main())
