"""Responses: JSON via orjson, Anthropic error envelopes, and the SSE stream with pings.

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

from rolecall.app.sse import PING_FRAME, SSE_HEADERS, frame
from rolecall.core.errors import InternalError, RolecallError
from rolecall.protocol.errors import error_envelope
from rolecall.protocol.events import Event

log = logging.getLogger("rolecall")
T = TypeVar("T")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: RolecallError, request_id: str | None) -> JSONResponse:
    return JSONResponse(error_envelope(error, request_id), status_code=error.status, headers=error.headers())


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


class EventStreamResponse(Response):
    """`stream: true`: one SSE frame per event, a `ping` after `ping_interval` seconds of silence,
    and an `error` event (then close) if generation fails after the stream began."""

    def __init__(self, events: AsyncGenerator[Event, None], *, ping_interval: float, request_id: str) -> None:
        self._events = events
        self._ping_interval = ping_interval
        self._request_id = request_id
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        write_lock = asyncio.Lock()
        last_write = time.monotonic()

        async def write(body: bytes) -> None:
            nonlocal last_write
            async with write_lock:
                await send({"type": "http.response.body", "body": body, "more_body": True})
                last_write = time.monotonic()

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(max(0.0, last_write + self._ping_interval - time.monotonic()))
                if time.monotonic() - last_write >= self._ping_interval:
                    await write(PING_FRAME)

        pinger = asyncio.create_task(keep_alive())
        try:
            await until_disconnect(receive, self._stream(write))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError):
            pass  # the client left; the generator was closed, which frees the engine slot
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _stream(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        async with contextlib.aclosing(self._events) as events:
            try:
                async for event in events:
                    await write(frame(event))
            except (asyncio.CancelledError, OSError):
                raise
            except Exception as exc:  # after the 200: the failure becomes an `error` event
                await write(frame(error_envelope(as_client_error(exc), self._request_id)))
