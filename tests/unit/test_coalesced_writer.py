"""app/responses.CoalescedWriter: the frames written while the event loop does not turn leave in one send;
a client that does not read holds the writer back."""

from __future__ import annotations

import asyncio
from typing import Any

from rolecall.app.responses import CoalescedWriter


def test_frames_of_one_turn_leave_in_one_send() -> None:
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["body"])

    async def run() -> None:
        out = CoalescedWriter(send)
        for frame in (b"a", b"b", b"c"):  # one upstream read's frames: no suspension between them
            await out.write(frame)
        await asyncio.sleep(0)  # the producer waits for the next read: the loop turns
        await out.write(b"d")
        await out.drain()

    asyncio.run(run())
    assert sent == [b"abc", b"d"]


def test_a_slow_client_holds_the_writer_back() -> None:
    sent: list[bytes] = []

    async def run() -> None:
        socket_free = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            await socket_free.wait()  # the client's socket buffer is full
            sent.append(message["body"])

        out = CoalescedWriter(send, high_water=3)
        await out.write(b"12")
        await asyncio.sleep(0)  # the flusher takes b"12" and blocks in send
        await out.write(b"34")
        blocked = asyncio.ensure_future(out.write(b"56"))  # 4 bytes pending > 3: it waits
        await asyncio.sleep(0.01)
        assert not blocked.done()
        socket_free.set()
        await blocked
        await out.drain()

    asyncio.run(run())
    assert b"".join(sent) == b"123456"
