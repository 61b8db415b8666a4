"""Streamed requests per second with `--workers 1` and `--workers 2`, in front of a zero-cost upstream, and
the CPU that rolecall (the parent and its workers together) spends per streamed token; plus the cost of one
admission round trip over the coordinator channel.

    .venv/bin/python bench/workers.py [--workers 1 2] [-c 32] [--seconds 10] [--repeat 3] [--tokens 256]
    .venv/bin/python bench/workers.py --channel          # µs per admit + release over the coordinator

The upstream (its own process, not counted) answers every chat request with the whole 256-token stream at
once, so rolecall's own work is all there is to wait for. CPU time is read from /proc (utime + stime of
rolecall's processes), so a busy machine moves it less than it moves the rates; the table gives ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httptools
from harness import BENCH_KEY, PYTHON, free_port, machine, rolecall_server, table

TICK = os.sysconf("SC_CLK_TCK")
CONFIG = """
workers = {workers}
queue_length = 1024
[[models]]
id = "zero-cost"
aliases = ["MiniMax-M2.7"]
engine = "openai"
upstreams = ["{upstream}"]
context = 8192
"""


# --- the zero-cost upstream (run as `bench/workers.py --serve-upstream PORT`) ---------------------------------


def _sse_answer(tokens: int) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": " tok"}}]} for _ in range(tokens)]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    events.append({"choices": [], "usage": usage})
    body = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events) + b"data: [DONE]\n\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(body)
    return head + body


def _json_answer(body: dict) -> bytes:
    raw = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(raw) + raw


class _Upstream(asyncio.Protocol):
    """Answers each request on a keep-alive connection at once: the stream in one write."""

    def __init__(self, answers: dict[str, bytes], tokens: int) -> None:
        self._answers = answers
        self._tokens = tokens
        self._url = b""
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        path = self._url.decode()
        if path.endswith("/chat/completions"):
            tokens = min(json.loads(self._body).get("max_tokens") or self._tokens, self._tokens)
            answer = self._answers.setdefault(f"chat-{tokens}", _sse_answer(tokens))
        else:
            answer = self._answers.get(path, self._answers["/health"])
        self._body = bytearray()
        self._transport.write(answer)  # type: ignore[attr-defined]


async def _serve_upstream(port: int, tokens: int) -> None:
    model = {"id": "zero-cost", "object": "model", "owned_by": "vllm", "max_model_len": 8192}
    answers = {
        "/v1/models": _json_answer({"object": "list", "data": [model]}),
        "/health": _json_answer({}),
        "/tokenize": _json_answer({"count": 12, "max_model_len": 8192, "tokens": []}),
    }
    server = await asyncio.get_running_loop().create_server(lambda: _Upstream(answers, tokens), "127.0.0.1", port)
    await server.serve_forever()


@contextlib.contextmanager
def upstream(tokens: int) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([PYTHON, __file__, "--serve-upstream", str(port), "--tokens", str(tokens)])
    try:
        time.sleep(1.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


# --- load and measurement -------------------------------------------------------------------------------------


def cpu_seconds(root: int) -> float:
    """utime + stime of `root` and every process below it (rolecall's parent, workers, not the upstream)."""
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total


class _Reply:
    def __init__(self) -> None:
        self.done = False
        self.tail = b""

    def on_body(self, body: bytes) -> None:
        self.tail = (self.tail + body)[-200:]

    def on_message_complete(self) -> None:
        self.done = True


async def _client(host: str, port: int, request: bytes, until: float) -> int:
    """Streamed messages one keep-alive connection completes before `until`."""
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.monotonic() < until:
            reply = _Reply()
            parser = httptools.HttpResponseParser(reply)
            writer.write(request)
            while not reply.done:
                data = await reader.read(262144)
                if not data:
                    raise RuntimeError("the server closed the connection")
                parser.feed_data(data)
            if parser.get_status_code() != 200 or b"message_stop" not in reply.tail:
                raise RuntimeError(f"bad answer {parser.get_status_code()}: {reply.tail!r}")
            done += 1
    finally:
        writer.close()
    return done


def _request(host: str, port: int, tokens: int) -> bytes:
    body = json.dumps(
        {"model": "MiniMax-M2.7", "max_tokens": tokens, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    ).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"x-api-key: {BENCH_KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def run_load(url: str, pid: int, *, concurrency: int, seconds: float, tokens: int) -> tuple[float, float]:
    """(streamed messages per second, µs of rolecall CPU per streamed token) over `seconds`."""
    host, port = url.removeprefix("http://").split(":")
    request = _request(host, int(port), tokens)

    async def load(span: float) -> int:
        until = time.monotonic() + span
        return sum(await asyncio.gather(*(_client(host, int(port), request, until) for _ in range(concurrency))))

    asyncio.run(load(1.0))  # warm-up: connections, caches, the workers' first requests
    before, began = cpu_seconds(pid), time.monotonic()
    messages = asyncio.run(load(seconds))
    wall, cpu = time.monotonic() - began, cpu_seconds(pid) - before
    return messages / wall, cpu / (messages * tokens) * 1e6


# --- the channel's own cost -----------------------------------------------------------------------------------


async def _channel(rounds: int) -> tuple[float, float]:
    from rolecall.service.workers.coordinator import Coordinator
    from rolecall.service.workers.link import CoordinatorLink, SharedAdmission

    with tempfile.TemporaryDirectory(prefix="rolecall-") as folder:
        coordinator = Coordinator(Path(folder) / "coordinator.sock")
        await coordinator.start()
        link = CoordinatorLink(coordinator.path, 1)
        await link.connect({"m": [64, 64, 30.0]}, lambda: "")
        gate = SharedAdmission(link, {"m": 64}).gate("m")
        for _ in range(1000):
            (await gate.enter()).release()
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            (await gate.enter()).release()
        wall, used = time.perf_counter() - began, time.process_time() - cpu
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
    parser.add_argument("--channel", action="store_true", help="measure the coordinator round trip only")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(_serve_upstream(args.serve_upstream, args.tokens))
        return
    print(f"machine: {machine()}")
    if args.channel:
        runs = [asyncio.run(_channel(20_000)) for _ in range(args.repeat)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        wall = f"{statistics.median(walls):.1f} µs ({min(walls):.1f}-{max(walls):.1f})"
        cpu = f"{statistics.median(cpus):.1f} µs ({min(cpus):.1f}-{max(cpus):.1f})"
        print(f"admit + release over the coordinator (both ends in one process): wall {wall}, CPU {cpu}")
        return
    rows = []
    with upstream(args.tokens) as upstream_url:
        for workers in args.workers:
            with rolecall_server(CONFIG.format(workers=workers, upstream=upstream_url)) as (url, pid):
                runs = [
                    run_load(url, pid, concurrency=args.concurrency, seconds=args.seconds, tokens=args.tokens)
                    for _ in range(args.repeat)
                ]
            rates, costs = [r for r, _ in runs], [c for _, c in runs]
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
    print(table(HEADER, rows))


HEADER = ["workers", "c", "streamed msg/s (median)", "range", "µs CPU / token (median)", "range"]


if __name__ == "__main__":
    sys.exit(main())
