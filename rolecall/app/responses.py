"""Responses for every door: JSON via orjson, and the SSE stream with keep-alives and a mid-stream
error frame (each door supplies its own framing and envelope).

Both the stream and the non-streaming fold stop generating as soon as the client disconnects:
the engine request is closed and its slot freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rolecall.core.errors import InternalError, RolecallError

log = logging.getLogger("rolecall")
T = TypeVar("T")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def as_client_error(exc: BaseException) -> RolecallError:
    """What a client is told about a failure: typed errors as they are, anything else as a 500."""
    if isinstance(exc, RolecallError):
        return exc
    log.exception("unexpected error", exc_info=exc)
    return InternalError("Internal server error")


class ClientDisconnected(Exception):
    """The client went away; nothing more is owed to it."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Run `work` in this task, cancelling it if the client disconnects first."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()


SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    """`stream: true`: the door's SSE frames as they come, `ping_frame` after `ping_interval` seconds of
    silence once the first frame is out, and `error_frame` (then close) if generation fails after the stream
    began. `on_close` runs once it is over, however it ended (also for a client gone before the headers went
    out)."""

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        ping_frame: bytes,
        ping_interval: float,
        error_frame: Callable[[RolecallError], bytes],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._frames = frames
        self._ping_frame = ping_frame
        self._ping_interval = ping_interval
        self._error_frame = error_frame
        self._on_close = on_close
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(receive, send)
        finally:
            if self._on_close is not None:
                await self._on_close()

    async def _respond(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        out = CoalescedWriter(send)
        last_write = time.monotonic()
        pinger: asyncio.Task[None] | None = None

        async def write(body: bytes) -> None:
            nonlocal last_write, pinger
            await out.write(body)
            last_write = time.monotonic()
            if pinger is None:  # keep-alives only after the first event: a stream must open with its own
                pinger = asyncio.create_task(keep_alive())

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(max(0.0, last_write + self._ping_interval - time.monotonic()))
                if time.monotonic() - last_write >= self._ping_interval:
                    await write(self._ping_frame)

        try:
            await until_disconnect(receive, self._stream(write))
            await out.drain()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError):
            pass  # the client left; the generator was closed, which frees the engine slot
        finally:
            out.cancel()
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger

    async def _stream(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        async with contextlib.aclosing(self._frames) as frames:
            try:
                async for body in frames:
                    await write(body)
            except (asyncio.CancelledError, OSError):
                raise
            except Exception as exc:  # after the 200: the failure becomes the door's error frame
                await write(self._error_frame(as_client_error(exc)))


class CoalescedWriter:
    """Frames written as one socket write per turn of the event loop: the frames of one upstream read (a
    burst of tokens) are produced without the loop turning, and go out together when the producer next
    waits. One `send` per frame was over half of rolecall's CPU per streamed token. A slow client pushes
    back: past `high_water` bytes pending, `write` waits for the socket."""

    def __init__(self, send: Send, high_water: int = 1 << 16) -> None:
        self._send = send
        self._high_water = high_water
        self._pending: list[bytes] = []
        self._size = 0
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, frame: bytes) -> None:
        self._pending.append(frame)
        self._size += len(frame)
        flusher = self._flusher
        if flusher is None or flusher.done():
            if flusher is not None:
                flusher.result()  # a failed send (the client left) surfaces here
            flusher = self._flusher = asyncio.get_running_loop().create_task(self._flush())
        if self._size > self._high_water:
            await asyncio.shield(flusher)

    async def drain(self) -> None:
        """Until every frame written so far has been sent."""
        if self._flusher is not None:
            await self._flusher

    def cancel(self) -> None:
        """Stop sending (the stream is over or the client left); a send that failed is not reported."""
        flusher = self._flusher
        if flusher is None:
            return
        if not flusher.done():
            flusher.cancel()
        elif not flusher.cancelled():
            flusher.exception()  # retrieved: the client leaving is not an error to log

    async def _flush(self) -> None:
        while self._pending:
            body = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            self._size = 0
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
