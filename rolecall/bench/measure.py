"""One request, timed: time to first token, the gaps between output events, total latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import orjson

from rolecall.bench.dialects import Reading, Target, headers, read_event, read_response, request_body
from rolecall.bench.sse import SSEDecoder
from rolecall.bench.workload import Workload


@dataclass(slots=True)
class Sample:
    """The measurements of one request. `ttft` and `gaps` are seconds; `ttft` is None without streaming."""

    turn: int
    ok: bool = False
    error: str | None = None
    latency: float = 0.0
    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    output_tokens: int = 0
    input_tokens: int | None = None
    text: str = ""
    retried: bool = False


async def measure(
    client: httpx.AsyncClient, target: Target, workload: Workload, messages: list[dict[str, str]], turn: int
) -> Sample:
    """Send one request and time it. Failures are recorded in the sample, never raised."""
    sample = Sample(turn)
    content = orjson.dumps(request_body(target, workload, messages))
    began = time.perf_counter()
    try:
        try:
            await _send(client, target, workload, content, sample, began)
        except httpx.RemoteProtocolError:
            if sample.text or sample.ttft is not None:
                raise
            # A kept-alive connection the server had already closed (llama.cpp's HTTP server ends one after
            # a few requests without saying so): what any client does is retry once on a new connection.
            sample.retried = True
            await _send(client, target, workload, content, sample, began)
    except (httpx.HTTPError, orjson.JSONDecodeError, _HttpStatus) as exc:
        sample.error = str(exc)[:200] or type(exc).__name__
    sample.latency = time.perf_counter() - began
    sample.ok = sample.error is None
    return sample


async def _send(
    client: httpx.AsyncClient, target: Target, workload: Workload, content: bytes, sample: Sample, began: float
) -> None:
    if workload.stream:
        await _streamed(client, target, content, sample, began)
    else:
        response = await client.post(target.url, content=content, headers=headers(target))
        _check_status(response.status_code, response.content)
        _absorb(sample, read_response(target.api, orjson.loads(response.content)))


async def _streamed(client: httpx.AsyncClient, target: Target, content: bytes, sample: Sample, began: float) -> None:
    decoder = SSEDecoder()
    events = 0
    last = began
    async with client.stream("POST", target.url, content=content, headers=headers(target)) as response:
        if response.status_code != 200:
            _check_status(response.status_code, await response.aread())
        async for raw in response.aiter_raw():
            now = time.perf_counter()
            for data in decoder.feed(raw):
                if data == b"[DONE]":
                    continue
                reading = read_event(target.api, orjson.loads(data))
                if reading.text:
                    if sample.ttft is None:
                        sample.ttft = now - began
                    else:
                        sample.gaps.append(now - last)
                    last = now
                    events += 1
                _absorb(sample, reading)
    if sample.output_tokens == 0:
        sample.output_tokens = events  # a server that reports no usage: one token per output event


def _absorb(sample: Sample, reading: Reading) -> None:
    sample.text += reading.text
    if reading.output_tokens is not None:
        sample.output_tokens = reading.output_tokens
    if reading.input_tokens is not None:
        sample.input_tokens = reading.input_tokens
    if reading.error is not None:
        sample.error = reading.error


class _HttpStatus(Exception):
    pass


def _check_status(status: int, body: bytes) -> None:
    if status != 200:
        raise _HttpStatus(f"HTTP {status}: {body[:160].decode('utf-8', 'replace')}")
