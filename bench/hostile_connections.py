"""Hostile connections against `rolecall serve` with its default limits (docs/reliability.md §8).

    .venv/bin/python bench/hostile_connections.py

Starts rolecall in its own process on the scripted engine (loopback only), then runs the probes of
issue #16 one after another, each with a `/health` and a real request sent while it is under way, and
prints one table row per probe: what the connections got, and when (from the probe's start).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from harness import BENCH_KEY, machine, rolecall_server, table

CONFIG = '\n[[models]]\nid = "scripted"\naliases = ["MiniMax-M2.7"]\nengine = "scripted"\n'
BODY = b'{"model":"MiniMax-M2.7","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
HEAD = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + BENCH_KEY.encode() + b"\r\n"
Probe = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _verdict(url: str, probe: Probe, began: float) -> tuple[str, float]:
    """What one connection got (a status line, 'closed' or 'reset') and when."""
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError as exc:
        return f"connect failed ({exc.errno})", time.monotonic() - began
    sender = asyncio.create_task(probe(reader, writer))
    try:
        first = await asyncio.wait_for(reader.read(12), 120)
        outcome = first.decode(errors="replace")[9:12] if first else "closed"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except TimeoutError:
        outcome = "still open after 120 s"
    sender.cancel()
    writer.close()
    return outcome, time.monotonic() - began


async def _drip(writer: asyncio.StreamWriter, data: bytes, interval: float = 1.0) -> None:
    with contextlib.suppress(OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)


def _probes() -> dict[str, tuple[int, Probe]]:
    async def idle(_: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def slowloris(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _drip(writer, HEAD + b"x-slow: " + b"a" * 3600)

    async def trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"content-length: %d\r\n\r\n" % len(BODY))
        await _drip(writer, BODY)

    async def unfinished_chunks(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(BODY), BODY))
        await asyncio.sleep(3600)

    async def huge_header(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(HEAD + b"x-big: " + b"a" * 8 * 2**20 + b"\r\n\r\n")
            await writer.drain()
        await asyncio.sleep(3600)

    async def many_headers(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(HEAD + b"".join(b"x-h%d: v\r\n" % i for i in range(100_000)) + b"\r\n")
            await writer.drain()
        await asyncio.sleep(3600)

    return {
        "idle, nothing sent": (900, idle),
        "idle, past max_connections": (2000, idle),
        "slowloris: a header byte per second": (300, slowloris),
        "body trickled at a byte per second": (300, trickle),
        "chunked body without its final chunk": (50, unfinished_chunks),
        "one 8 MiB header": (10, huge_header),
        "100,000 headers": (10, many_headers),
    }


def _normal_traffic(url: str) -> str:
    """A /health and a real request while the probe runs: their status and time."""
    began = time.monotonic()
    try:
        health = httpx.get(url + "/health", timeout=30).status_code
        answer = httpx.post(url + "/v1/messages", content=BODY, headers={"x-api-key": BENCH_KEY}, timeout=30)
        return f"{health} / {answer.status_code} in {time.monotonic() - began:.2f} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} after {time.monotonic() - began:.2f} s"


async def _run(url: str, connections: int, probe: Probe) -> list[object]:
    began = time.monotonic()
    verdicts = [asyncio.create_task(_verdict(url, probe, began)) for _ in range(connections)]
    await asyncio.sleep(1.0)  # the probe is under way (a measurement script, not a test)
    during = await asyncio.to_thread(_normal_traffic, url)
    results = await asyncio.gather(*verdicts)
    counts = Counter(outcome for outcome, _ in results)
    by_outcome = ", ".join(f"{n}× {outcome}" for outcome, n in counts.most_common())
    times = sorted(elapsed for _, elapsed in results)
    return [connections, by_outcome, f"{times[0]:.1f}–{times[-1]:.1f} s", during]


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    rows = []
    with rolecall_server(CONFIG) as (url, _):
        for name, (connections, probe) in _probes().items():
            rows.append([name, *asyncio.run(_run(url, connections, probe))])
            print(f"{name}: {rows[-1][1:]}", flush=True)
    print(machine())
    print(table(["probe", "connections", "outcome", "verdict after", "/health / a request, during"], rows))


if __name__ == "__main__":
    main()
