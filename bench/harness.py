"""What the bench scripts share: start a llama.cpp server or `rolecall serve` as its own process,
run `rolecall bench` plans against them, and print markdown tables.

Every server is a separate process, apart from the load generator, as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from rolecall.engines.bundled import bundled_gguf

PYTHON = sys.executable
BENCH_KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llamacpp_server(*, context: int = 8192, parallel: int = 4, threads: int | None = None) -> Iterator[tuple[str, str]]:
    """A bare llama.cpp server (the same worker rolecall embeds, same settings) -> (base URL, key)."""
    key = secrets.token_urlsafe(16)
    settings = {
        "model_path": str(bundled_gguf()),
        "n_ctx": context,
        "n_parallel": parallel,
        "n_threads": threads,
        "api_key": key,
    }
    process = subprocess.Popen(
        [PYTHON, "-m", "rolecall.engines.llamacpp_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(settings) + "\n")
        process.stdin.flush()
        url = json.loads(process.stdout.readline())["url"]
        _wait_healthy(url, key)
        yield url, key
    finally:
        if process.stdin:
            process.stdin.close()  # the worker's cue to stop
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        if process.poll() is None:
            process.kill()


@contextlib.contextmanager
def rolecall_server(
    config_toml: str, *, env: dict[str, str] | None = None, tree: Path | None = None
) -> Iterator[tuple[str, int]]:
    """`rolecall serve --config` in its own process -> (base URL, pid). `tree`: run the rolecall package of that
    checkout (its directory comes first on the path) rather than the installed one."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        config = Path(data_dir) / "rolecall.toml"
        config.write_text(f'api_keys = ["{BENCH_KEY}"]\n' + config_toml)
        process = subprocess.Popen(
            [PYTHON, "-m", "rolecall", "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"],
            env={**os.environ, "ROLECALL_DATA_DIR": data_dir, **(env or {})},
            cwd=tree,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, BENCH_KEY, process)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(url: str, key: str, process: subprocess.Popen | None = None, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", headers={"authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s")


def rss_kib(pid: int) -> int:
    """Resident memory of one process (its children not included)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def machine() -> str:
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"load average {load[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
