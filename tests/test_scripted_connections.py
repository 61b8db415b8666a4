"""Connection limits (app/connections.py) against the real server over raw loopback sockets: clients that
never send, send slowly, or send too much are answered 408/431/503 or closed within the configured time,
while /health and a normal request keep working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.server import running_server
from tests.support.waiting import wait_until

LIMITS = {
    "idle_timeout": 0.5,
    "header_timeout": 0.5,
    "body_timeout": 0.5,
    "min_body_rate": 1024,
    "max_header_bytes": 8192,
    "max_headers": 32,
}
BODY = b'{"model":"scripted","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
# Generous: a verdict due after 0.5 s may come late on a loaded machine, but never after this.
VERDICT_WITHIN = 15.0


def _serve(data_dir: Path, **settings: object) -> Iterator[str]:
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    with running_server(Settings(data_dir=data_dir, **settings), registry=registry) as url:
        yield url


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("connections"), max_connections=400, **LIMITS)


@pytest.fixture(scope="module")
def capped_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    limits = {**LIMITS, "idle_timeout": 60.0}  # idle connections stay: only the cap may refuse
    yield from _serve(tmp_path_factory.mktemp("capped"), max_connections=50, **limits)


@asynccontextmanager
async def _connection(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as a close)."""
    received = b""
    try:
        async with asyncio.timeout(VERDICT_WITHIN):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return received


async def _send_slowly(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """One byte every `interval` seconds until the data runs out or the server hangs up."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)
    except (ConnectionResetError, BrokenPipeError):
        pass


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _still_serving(url: str) -> None:
    """/health and a real request are answered normally."""
    assert httpx.get(url + "/health").status_code == 200
    response = httpx.post(url + "/v1/messages", content=BODY, headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.json()["type"] == "message"


async def _in_parallel(url: str, attack: object) -> list[bytes]:
    """Run `attack` and, while it is under way, a normal request in a thread."""
    assert asyncio.iscoroutine(attack)
    normal = asyncio.to_thread(_still_serving, url)
    answers, _ = await asyncio.gather(attack, normal)
    return answers


def test_idle_connections_are_closed(url: str) -> None:
    async def attack() -> list[bytes]:
        async def idle() -> bytes:
            async with _connection(url) as (reader, _):
                return await _answer(reader)

        return await asyncio.gather(*(idle() for _ in range(300)))

    answers = asyncio.run(_in_parallel(url, attack()))
    assert answers == [b""] * 300  # closed without a word, like a keep-alive timeout
    _still_serving(url)


def test_slowloris_headers_get_408(url: str) -> None:
    async def attack() -> list[bytes]:
        async def slowloris() -> bytes:
            async with _connection(url) as (reader, writer):
                head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 200
                sender = asyncio.create_task(_send_slowly(writer, head, 0.05))
                answer = await _answer(reader)
                sender.cancel()
                return answer

        return await asyncio.gather(*(slowloris() for _ in range(50)))

    for answer in asyncio.run(_in_parallel(url, attack())):
        assert _status(answer) == 408, answer[:200]
        assert b"Request headers not received within 0.5 s" in answer
        assert b"connection: close" in answer
    _still_serving(url)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_trickled_body_gets_408(url: str, chunked: bool) -> None:
    framing = b"transfer-encoding: chunked\r\n" if chunked else b"content-length: %d\r\n" % len(BODY)
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + framing + b"\r\n"
    # Chunked: a first chunk, then nothing (the final chunk never comes). Else: the body a byte at a time.
    start = b"%x\r\n%s\r\n" % (len(BODY), BODY) if chunked else b""

    async def attack() -> list[bytes]:
        async def trickle() -> bytes:
            async with _connection(url) as (reader, writer):
                writer.write(head + start)
                sender = asyncio.create_task(_send_slowly(writer, b"" if chunked else BODY, 0.05))
                answer = await _answer(reader)
                sender.cancel()
                return answer

        return await asyncio.gather(*(trickle() for _ in range(20)))

    for answer in asyncio.run(_in_parallel(url, attack())):
        assert _status(answer) == 408, answer[:200]
        assert b"Request body too slow" in answer and b"below 1024 bytes/s" in answer
    _still_serving(url)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (b"x-big: " + b"a" * (8 * 2**20) + b"\r\n", b"Request headers exceed 8192 bytes"),  # one 8 MiB header
        (b"x-big: " + b"a" * 20_000 + b"\r\n", b"Request headers exceed 8192 bytes"),  # complete in one read
        (b"".join(b"x-h%d: v\r\n" % i for i in range(100_000)), b"more than 32 headers"),
        (b"".join(b"x-h%d: v\r\n" % i for i in range(40)), b"more than 32 headers"),
    ],
    ids=["8MiB-header", "20kB-header", "100k-headers", "40-headers"],
)
def test_oversized_headers_get_431(url: str, headers: bytes, message: bytes) -> None:
    async def attack() -> bytes:
        async with _connection(url) as (reader, writer):
            writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n" + headers + b"\r\n")
            with suppress(ConnectionResetError, BrokenPipeError):
                await writer.drain()
            return await _answer(reader)

    answer = asyncio.run(attack())
    # The server hangs up once the cap is passed; with megabytes still in flight the kernel may turn that
    # into a reset that overtakes the answer: then "closed" is all the client can see.
    if answer:
        assert _status(answer) == 431, answer[:200]
        assert message in answer
    _still_serving(url)


def test_the_connection_cap_refuses_with_503(capped_url: str) -> None:
    async def attack() -> bytes:
        parts = urlsplit(capped_url)
        held = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(50)]
        try:
            async with _connection(capped_url) as (reader, _):
                return await _answer(reader)
        finally:
            for _, writer in held:
                writer.close()

    answer = asyncio.run(attack())
    assert _status(answer) == 503, answer[:200]
    assert b"overloaded_error" in answer and b"max_connections" in answer and b"retry-after: 1" in answer
    # Once the server has seen the held connections close, new ones are served again.
    assert wait_until(lambda: _health(capped_url) == 200)
    _still_serving(capped_url)


def _health(url: str) -> int | None:
    try:
        return httpx.get(url + "/health").status_code
    except httpx.TransportError:
        return None
