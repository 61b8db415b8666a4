"""Clients that go away mid-generation must free their engine slots: the real server stays live.

The real server has 4 llama.cpp slots. Six long generations are started and abandoned; if rolecall did not
cancel them, every slot would stay busy for up to 2000 tokens and the requests below would queue behind them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import re
import socket
import struct
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import API_KEY
from tests.real_checks import SERVED_ID, body, metric_sample
from tests.support.waiting import wait_until

LONG_TEXT = "Count from 1 to 1000, writing every number in words, separated by commas."  # runs to max_tokens
LIVENESS_BOUND = 30.0  # seconds: generous, a liveness check and not a benchmark (a leak holds the slots ~1 min)
SLOTS = 4


def _in_flight(metrics: str) -> float:
    match = re.search(r"^rolecall_in_flight_requests (\S+)$", metrics, re.M)
    assert match, "rolecall_in_flight_requests missing"
    return float(match[1])


def _assert_live(real_url: str) -> None:
    """The slots are free: a short request, then one per slot at once, finish promptly and in full."""
    with httpx.Client(base_url=real_url, headers={"x-api-key": API_KEY}, timeout=LIVENESS_BOUND) as client:
        began = time.monotonic()
        try:
            response = client.post("/v1/messages", json=body("Say hi.", max_tokens=16))
        except httpx.TimeoutException:
            pytest.fail(f"a short request did not finish within {LIVENESS_BOUND} s: the engine slots are still busy")
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["output_tokens"] >= 1
        assert time.monotonic() - began < LIVENESS_BOUND

        def one(_: int) -> httpx.Response:
            return client.post("/v1/messages", json=body("Name a color.", max_tokens=16))

        began = time.monotonic()
        with ThreadPoolExecutor(SLOTS) as pool:
            responses = list(pool.map(one, range(SLOTS)))
        assert all(r.status_code == 200 for r in responses)
        assert time.monotonic() - began < LIVENESS_BOUND

        # rolecall itself holds no abandoned request (the /metrics request is the only one in flight).
        deadline = time.monotonic() + 10
        while _in_flight(client.get("/metrics").text) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _in_flight(client.get("/metrics").text) == 1


async def _open_and_abandon(real_url: str, streams: int) -> list[list[str]]:
    """Open `streams` long SSE generations at once, read from each until generation is clearly under way
    in every slot, then drop them all mid-stream. Returns the event types each one saw."""
    seen: list[list[str]] = [[] for _ in range(streams)]
    generating = asyncio.Event()
    payload = body(LONG_TEXT, max_tokens=2000, stream=True, top_k=1)

    async def read(index: int, client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/messages", json=payload) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    seen[index].append(line[len("event: ") :])
                    deltas = [kinds.count("content_block_delta") for kinds in seen]
                    if sum(d >= 3 for d in deltas) >= min(streams, SLOTS):
                        generating.set()

    async with httpx.AsyncClient(
        base_url=real_url, headers={"x-api-key": API_KEY}, timeout=60, limits=httpx.Limits(max_connections=streams + 2)
    ) as client:
        tasks = [asyncio.create_task(read(i, client)) for i in range(streams)]
        try:
            await asyncio.wait_for(generating.wait(), timeout=60)
        finally:
            for task in tasks:
                task.cancel()  # closes each response mid-stream: the server sees the client go away
            results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if not isinstance(result, asyncio.CancelledError):
            raise AssertionError(f"a stream ended before it was abandoned: {result!r}")
    return seen


def test_abandoned_streams_free_the_engine(real_url: str) -> None:
    seen = asyncio.run(_open_and_abandon(real_url, streams=6))
    for kinds in seen:
        # An admitted stream is answered at once (message_start, ping); one still waiting in rolecall's
        # admission queue has no 200 yet, so it saw nothing when it was abandoned.
        assert kinds[:2] == ["message_start", "ping"] or kinds == [], kinds
        assert "message_stop" not in kinds
    assert sum("content_block_delta" in kinds for kinds in seen) >= SLOTS
    assert sum(kinds == [] for kinds in seen) <= 6 - SLOTS, "only requests beyond the slots wait"
    _assert_live(real_url)


def test_abandoned_non_streaming_requests_free_the_engine(real_url: str) -> None:
    def abandon(_: int) -> bool:
        """True if the client gave up while the server was still generating."""
        with httpx.Client(base_url=real_url, headers={"x-api-key": API_KEY}, timeout=httpx.Timeout(60, read=1.5)) as c:
            try:
                response = c.post("/v1/messages", json=body(LONG_TEXT, max_tokens=2000, top_k=1))
            except httpx.ReadTimeout:
                return True
            assert response.status_code == 200
            return False

    def gone(metrics: str) -> float:
        return metric_sample(metrics, "rolecall_requests_total", 0.0, route="/v1/messages", status="499")

    before = httpx.get(real_url + "/metrics", headers={"x-api-key": API_KEY}).text
    with ThreadPoolExecutor(SLOTS + 2) as pool:
        abandoned = sum(pool.map(abandon, range(SLOTS + 2)))
    # Greedy output still varies with batching, and the tiny model may end one early: enough that every
    # slot would stay busy if abandoned generations leaked.
    assert abandoned >= SLOTS, "the long generations should outlast the client's patience"
    _assert_live(real_url)
    # Each one is recorded as abandoned by its client (499), not as a server error.
    after = httpx.get(real_url + "/metrics", headers={"x-api-key": API_KEY}).text
    assert gone(after) - gone(before) == abandoned
    assert metric_sample(after, "rolecall_requests_total", 0.0, route="/v1/messages", status="500") == metric_sample(
        before, "rolecall_requests_total", 0.0, route="/v1/messages", status="500"
    )


def test_health_after_disconnects(real_url: str) -> None:
    response = httpx.get(real_url + "/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["models"][SERVED_ID] == "ok"


def _unread(sock: socket.socket) -> int:
    """Bytes waiting in the socket's receive buffer."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]


def _admission_in_flight(real_url: str) -> float:
    metrics = httpx.get(real_url + "/metrics", headers={"x-api-key": API_KEY}).text
    return metric_sample(metrics, "rolecall_admission_in_flight", model=SERVED_ID)


def test_a_slow_reader_that_closes_frees_its_slot(real_url: str) -> None:
    """Issue #16 item 8: a reader that stops reading (its receive window full, rolecall's send blocked)
    and then closes its socket must free its admission slot as promptly as a normal reader."""
    parts = urlsplit(real_url)
    payload = json.dumps({**body(LONG_TEXT, max_tokens=2000), "stream": True}).encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((parts.hostname, parts.port))
        head = f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\ncontent-type: application/json\r\n"
        sock.sendall(f"{head}content-length: {len(payload)}\r\n\r\n".encode() + payload)
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        # Stop reading: generation goes on until our receive buffer is full and rolecall's writes block.
        assert _admission_in_flight(real_url) == 1
        assert wait_until(lambda: _unread(sock) >= 2048, timeout=LIVENESS_BOUND)
    closed = time.monotonic()
    assert wait_until(lambda: _admission_in_flight(real_url) == 0, timeout=LIVENESS_BOUND)
    freed_after = time.monotonic() - closed
    print(f"slow reader's slot freed {freed_after:.2f} s after its socket closed")
    _assert_live(real_url)
