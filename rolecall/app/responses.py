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
    """Run `work` to its end, cancelling it if the client disconnects first (then `ClientDisconnected`).

    `work` runs in a task of its own, not in the request's: a non-streamed answer resumes its task once per
    read of the engine's output, and each resume of the request's task would also resume the ~20 frames of
    uvicorn, Starlette, FastAPI and rolecall's middlewares above the route. Cancelling the caller (the server
    stops) cancels `work` and waits for it to end."""
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone:
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()


# Where the app (app/context.ServedApp) leaves the server's own `send` in the request's state.
SERVER_SEND = "server_send"


def body_sender(scope: Scope, send: Send) -> Send:
    """The `send` for a response's body messages once its start went through `send`: the server's own.

    Every middleware between them (Starlette's error middleware and exception handlers, rolecall's request
    context) looks only at `http.response.start` and passes body messages on unchanged, at the cost of a
    coroutine call each: three per streamed token. A middleware that rewrote bodies (compression) would have to
    stop this."""
    return scope.get("state", {}).get(SERVER_SEND, send)


SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    """`stream: true`: the door's SSE frames as they come (each item of `frames` is what one read of the
    engine's output became, written with one send), `ping_frame` after `ping_interval` seconds of
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
            await self._respond(receive, send, body_sender(scope, send))
        finally:
            if self._on_close is not None:
                await self._on_close()

    async def _respond(self, receive: Receive, send: Send, send_body: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        last_write = time.monotonic()
        pinger: asyncio.Task[None] | None = None

        async def write(body: bytes) -> None:
            # One send per frame batch (a read of the engine's output), straight from the producer: a burst's
            # frames leave in one socket write, and a slow client pushes back through uvicorn's flow control.
            nonlocal last_write, pinger
            await send_body({"type": "http.response.body", "body": body, "more_body": True})
            last_write = time.monotonic()
            if pinger is None:  # keep-alives only after the first event: a stream must open with its own
                pinger = asyncio.create_task(keep_alive())

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(max(0.0, last_write + self._ping_interval - time.monotonic()))
                if time.monotonic() - last_write >= self._ping_interval:
                    await write(self._ping_frame)

        # The frames are produced in a task of their own: each read of the engine's output then resumes a
        # stack of a few frames (this task, the door's generators, the engine's reader), not the whole ASGI
        # stack of middlewares and routing above this response. Cancelling this task (the client left, the
        # server stops) cancels that one, and waits for it to end.
        pump = asyncio.create_task(self._stream(write))
        try:
            await until_disconnect(receive, pump)
            await send_body({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError):
            pass  # the client left; the generator was closed, which frees the engine slot
        finally:
            if not pump.done():  # awaiting the pump ends with it (cancelling this task cancels it): a safety net
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await pinger

    async def _stream(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        async with contextlib.aclosing(self._frames) as frames:
            try:
                async for body in frames:
                    if body:
                        await write(body)
            except (asyncio.CancelledError, OSError):
                raise
            except Exception as exc:  # after the 200: the failure becomes the door's error frame
                await write(self._error_frame(as_client_error(exc)))
