"""app/responses.EventStreamResponse: each item of its frames (one read of the engine's output, joined) is one
send, written from the producer itself (a client that does not read holds it back), and a client that leaves
closes the frames and runs `on_close`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from rolecall.app.responses import EventStreamResponse
from rolecall.core.errors import RolecallError, UpstreamError


def response(frames: AsyncGenerator[bytes, None], closed: list[str]) -> EventStreamResponse:
    async def on_close() -> None:
        closed.append("closed")

    def error_frame(error: RolecallError) -> bytes:
        return b"error: " + error.message.encode()

    return EventStreamResponse(frames, ping_frame=b"ping", ping_interval=60, error_frame=error_frame, on_close=on_close)


async def never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def test_each_batch_of_frames_is_one_send_and_the_end_is_one_more() -> None:
    sent: list[dict[str, Any]] = []
    closed: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b"start+first token"
        yield b""  # a read whose events had no frame of this door's (nothing is sent)
        yield b"token"
        yield b"end+usage+done"

    asyncio.run(asyncio.wait_for(response(frames(), closed)({}, never_disconnects, send), 5))
    assert sent[0]["type"] == "http.response.start"
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [
        (b"start+first token", True),
        (b"token", True),
        (b"end+usage+done", True),
        (b"", False),
    ]
    assert closed == ["closed"]


def test_a_failure_after_the_200_is_the_doors_error_frame() -> None:
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b"token"
        raise UpstreamError("the engine fell over")

    asyncio.run(asyncio.wait_for(response(frames(), [])({}, never_disconnects, send), 5))
    assert bodies == [b"token", b"error: the engine fell over", b""]


def test_a_client_that_does_not_read_holds_the_producer_back() -> None:
    produced: list[int] = []

    async def run() -> None:
        socket_free = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message["body"]:
                await socket_free.wait()  # the client's socket buffer is full (uvicorn's flow control)

        async def frames() -> AsyncGenerator[bytes, None]:
            for i in range(3):
                produced.append(i)
                yield b"frame"

        streaming = asyncio.ensure_future(response(frames(), [])({}, never_disconnects, send))
        await asyncio.sleep(0.05)
        assert produced == [0]  # the first send waits: nothing more is produced
        socket_free.set()
        await asyncio.wait_for(streaming, 5)

    asyncio.run(run())
    assert produced == [0, 1, 2]


def test_a_client_that_leaves_closes_the_frames_and_runs_on_close() -> None:
    closed: list[str] = []

    async def run() -> None:
        left = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        async def frames() -> AsyncGenerator[bytes, None]:
            try:
                yield b"token"
                await asyncio.Event().wait()  # the engine is slow
                yield b"never"
            finally:
                closed.append("frames")

        streaming = asyncio.ensure_future(response(frames(), closed)({}, receive, send))
        await asyncio.sleep(0.05)
        left.set()
        await asyncio.wait_for(streaming, 5)

    asyncio.run(run())
    assert closed == ["frames", "closed"]
