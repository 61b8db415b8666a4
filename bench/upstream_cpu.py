"""CPU that rolecall spends per streamed token and per message, in front of a zero-cost upstream.

    .venv/bin/python bench/upstream_cpu.py [--pace paced burst] [-c 1 16 64] [--repeat 3] \
        [--target rolecall litellm floor]

`bench/zero_cost_upstream.py` (its own process) answers 256-token answers either paced (one token every
20 ms, an engine's pace) or in bursts (the whole answer at once); rolecall runs in its own process as an
`openai` engine over it. The measure is the rolecall process's CPU time from /proc (utime + stime), not wall
time, so a shared machine changes it little: per message = CPU / messages for 1-token answers (the fixed
part: HTTP in and out, validation, shaping, the upstream request), per streamed token = the extra CPU of
256-token answers over 1-token ones, / 255. Streaming and non-streaming (the same upstream stream, folded).

`--target floor` runs `bench/floor_relay.py`, the least a Python relay can do per token (one event written per
token from the socket's read callback), for scale. `--target litellm` runs the same load against LiteLLM's
proxy (installed on demand into its own venv under ~/.cache/rolecall-bench; never a dependency of rolecall);
without network it is skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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
from harness import BENCH_KEY, PYTHON, free_port, machine, rolecall_server, table

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")
PACE = {"paced": 0.02, "burst": 0.0}
CONFIG = """
[[models]]
id = "zero-cost"
aliases = ["MiniMax-M2.7"]
engine = "openai"
upstreams = ["{upstream}"]
"""
PROMPT = "Say hello to the benchmark, briefly."


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@contextlib.contextmanager
def upstream(pace: float) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([PYTHON, str(HERE / "zero_cost_upstream.py"), "--port", str(port), "--pace", str(pace)])
    try:
        _wait_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


class _Reply:
    """httptools callbacks for one response on a keep-alive connection."""

    def __init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.set_result(None)


async def _client(host: str, port: int, request: bytes, count: int, check: bytes) -> None:
    """One keep-alive connection sending `count` requests in turn; each answer must be a 200 holding `check`."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            reply = _Reply()
            parser = httptools.HttpResponseParser(reply)
            writer.write(request)
            while not reply.done.done():
                data = await reader.read(65536)
                if not data:
                    raise RuntimeError("the server closed the connection")
                parser.feed_data(data)
            if parser.get_status_code() != 200 or check not in reply.body:
                raise RuntimeError(f"bad answer {parser.get_status_code()}: {bytes(reply.body[:300])!r}")
    finally:
        writer.close()


def _request(host: str, port: int, path: str, *, stream: bool, tokens: int, model: str) -> bytes:
    body = b'{"model":"%s","max_tokens":%d,"stream":%s,"messages":[{"role":"user","content":"%s"}]}' % (
        model.encode(),
        tokens,
        b"true" if stream else b"false",
        PROMPT.encode(),
    )
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {BENCH_KEY}\r\nx-api-key: {BENCH_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True)
class Load:
    url: str
    pid: int
    path: str = "/v1/messages"
    model: str = "MiniMax-M2.7"

    def run(self, *, stream: bool, tokens: int, concurrency: int, messages: int) -> float:
        """CPU seconds the target process spent answering `messages` messages at `concurrency`."""
        host, port = self.url.removeprefix("http://").split(":")
        request = _request(host, int(port), self.path, stream=stream, tokens=tokens, model=self.model)
        check = (b"message_stop" if self.path.endswith("/messages") else b"[DONE]") if stream else b"usage"
        per_client = max(1, messages // concurrency)
        before = cpu_seconds(self.pid)

        async def load() -> None:
            await asyncio.gather(*(_client(host, int(port), request, per_client, check) for _ in range(concurrency)))

        asyncio.run(load())
        return (cpu_seconds(self.pid) - before) / (per_client * concurrency)


def measure(load: Load, pace: str, concurrency: int, stream: bool, tokens: int) -> tuple[float, float]:
    """(µs CPU per streamed token, ms CPU fixed per message) for one case."""
    # Enough messages for ~1 s of CPU on the short answers; paced long answers are bounded by their pace.
    long_messages = max(2 * concurrency, 6) if pace == "paced" else max(8 * concurrency, 200)
    short_messages = max(8 * concurrency, 400)
    load.run(stream=stream, tokens=tokens, concurrency=concurrency, messages=concurrency)  # warm-up
    per_long = load.run(stream=stream, tokens=tokens, concurrency=concurrency, messages=long_messages)
    per_short = load.run(stream=stream, tokens=1, concurrency=concurrency, messages=short_messages)
    return (per_long - per_short) / (tokens - 1) * 1e6, per_short * 1e3


def _litellm_venv() -> Path | None:
    """LiteLLM's proxy in a venv of its own, installed on first use; None when it cannot be installed."""
    venv = Path.home() / ".cache" / "rolecall-bench" / "litellm-venv"
    litellm = venv / "bin" / "litellm"
    if litellm.exists():
        return litellm
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"LiteLLM skipped: it could not be installed ({exc})", file=sys.stderr)
        return None
    return litellm


@contextlib.contextmanager
def litellm_server(litellm: Path, upstream_url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "litellm.yaml"
        config.write_text(
            "model_list:\n  - model_name: MiniMax-M2.7\n    litellm_params:\n"
            f"      model: openai/zero-cost\n      api_base: {upstream_url}/v1\n      api_key: none\n"
            f"general_settings:\n  master_key: {BENCH_KEY}\n"
        )
        process = subprocess.Popen(
            [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port, process, timeout=300)
            yield f"http://127.0.0.1:{port}", process.pid
        finally:
            process.terminate()
            process.wait(30)


@contextlib.contextmanager
def floor_relay(upstream_url: str) -> Iterator[tuple[str, int]]:
    """bench/floor_relay.py in its own process -> (base URL, pid)."""
    port = free_port()
    process = subprocess.Popen([PYTHON, str(HERE / "floor_relay.py"), "--port", str(port), "--upstream", upstream_url])
    try:
        _wait_port(port, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pace", nargs="+", choices=sorted(PACE), default=["paced", "burst"])
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--mode", nargs="+", choices=["stream", "non-stream"], default=["stream", "non-stream"])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case; the table gives their range")
    parser.add_argument("--door", default="/v1/messages", help="rolecall's door (LiteLLM: /v1/chat/completions)")
    parser.add_argument(
        "--target",
        nargs="+",
        choices=["rolecall", "litellm", "floor"],
        default=["rolecall"],
        help="litellm: installed on demand; floor: bench/floor_relay.py, the least a Python relay can do",
    )
    args = parser.parse_args()
    litellm = _litellm_venv() if "litellm" in args.target else None
    print(f"machine: {machine()}")
    rows = []
    for pace in args.pace:
        with upstream(PACE[pace]) as upstream_url:
            targets = []
            if "rolecall" in args.target:
                targets.append(("rolecall", rolecall_server(CONFIG.format(upstream=upstream_url)), args.door))
            if litellm is not None:
                targets.append(("LiteLLM", litellm_server(litellm, upstream_url), "/v1/chat/completions"))
            if "floor" in args.target:
                targets.append(("floor", floor_relay(upstream_url), "/v1/messages"))
            for name, server, door in targets:
                with server as (url, pid):
                    load = Load(url, pid, door)
                    for concurrency in args.concurrency:
                        for mode in args.mode:
                            runs = [
                                measure(load, pace, concurrency, mode == "stream", args.tokens)
                                for _ in range(args.repeat)
                            ]
                            rows.append([name, pace, concurrency, mode, *spread(runs)])
                            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print(table(HEADER, rows))


HEADER = ["target", "upstream", "c", "mode", "µs CPU / token (median)", "range", "ms CPU / message (median)", "range"]


def spread(runs: list[tuple[float, float]]) -> list[object]:
    tokens = [t for t, _ in runs]
    fixed = [f for _, f in runs]
    return [
        statistics.median(tokens),
        f"{min(tokens):.1f}-{max(tokens):.1f}",
        statistics.median(fixed),
        f"{min(fixed):.2f}-{max(fixed):.2f}",
    ]


if __name__ == "__main__":
    main()
