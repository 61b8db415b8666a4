"""What the two OpenAI-side doors share: decode a chat-completions request, start its `n` generations,
and encode their events as `chat.completion.chunk`s (streamed as `data:` frames, or folded into one
body). Each door's router adds its own framing and error envelope."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from fastapi import Request
from starlette.responses import Response

from rolecall.app.body import read_body
from rolecall.app.responses import EventStreamResponse, JSONResponse, until_disconnect
from rolecall.core.caller import Caller
from rolecall.core.errors import RolecallError
from rolecall.core.events import OutputEvent
from rolecall.protocol.openai.encoder import ChunkEncoder, reasoning_style
from rolecall.protocol.openai.fold import ChatFold
from rolecall.protocol.openai.limits import check_caps
from rolecall.protocol.openai.requests import ChatCompletionRequest
from rolecall.protocol.openai.validation import parse_request
from rolecall.service.generation import Choices, start_choices
from rolecall.service.openai import prepare_chat, render_chat
from rolecall.service.runtime import Runtime

DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b": ping\n\n"  # an SSE comment: every OpenAI-side client skips it
T = TypeVar("T")


@dataclass(slots=True)
class StartedChat:
    body: ChatCompletionRequest
    choices: Choices
    encoder: ChunkEncoder


async def _read(request: Request, runtime: Runtime) -> ChatCompletionRequest:
    """The body, read under the size cap, validated, and checked against the request caps."""
    settings = runtime.settings
    body = parse_request(await read_body(request, settings.max_body_bytes))
    check_caps(body, settings.max_messages, settings.max_tools, settings.max_block_chars)
    return body


async def start_chat(request: Request, caller: Caller) -> StartedChat:
    """Decode, validate, shape and start the request's generations; every failure here is an HTTP error."""
    runtime: Runtime = request.app.state.runtime
    body = await _read(request, runtime)
    record = request.state.ledger  # the request's ledger row (RequestContext)
    record.model_asked = body.model
    prepared = await prepare_chat(runtime, body)
    n = body.n or 1
    # Waiting for slots and the engine's early failures end as soon as the client leaves.
    choices = await until_disconnect(request.receive, start_choices(runtime, caller, prepared.call, n, record))
    request.state.limit_headers = choices.generations[0].ticket.headers  # one ticket for the request's n
    encoder = ChunkEncoder(
        body.model,
        n=n,
        style=reasoning_style(body.reasoning_split),
        # The fold of a non-streamed reply needs the usage chunk whether or not it was asked for.
        include_usage=body.include_usage or body.stream is not True,
        ai_name=prepared.ai_name,
    )
    return StartedChat(body, choices, encoder)


def per_read(chat: StartedChat, handle: Callable[[int, list[OutputEvent]], T | None]) -> AsyncGenerator[T, None]:
    """What `handle(choice index, events)` makes of each read of each choice's output, in arrival order (None or
    empty: nothing to pass on). Each door's frames, or the fold, are made in `handle`, called in the
    generation's own loop (`Generation.each_read`): no generator between the response and the generation."""
    choices = chat.choices
    if len(choices.generations) == 1:  # nearly every request: its one choice is read directly
        return choices.generations[0].each_read(partial(handle, 0))
    return _interleaved(choices.events(), handle)  # `Choices` interleaves several through a queue


async def _interleaved(
    source: AsyncGenerator[tuple[int, list[OutputEvent]], None], handle: Callable[[int, list[OutputEvent]], T | None]
) -> AsyncGenerator[T, None]:
    async with contextlib.aclosing(source) as batches:
        async for index, events in batches:
            if out := handle(index, events):
                yield out


async def respond(
    request: Request,
    chat: StartedChat,
    frames: Callable[[StartedChat], AsyncGenerator[bytes, None]],
    error_frame: Callable[[RolecallError], bytes],
) -> Response:
    """The door's answer: its own `frames` of the chunks with pings when the request streams, else the fold
    of every chunk into one `chat.completion`. `error_frame` ends a stream that fails after its 200."""
    if chat.body.stream is True:
        runtime: Runtime = request.app.state.runtime
        return EventStreamResponse(
            frames(chat),
            ping_frame=PING_FRAME,
            ping_interval=runtime.settings.ping_interval,
            error_frame=error_frame,
            on_close=chat.choices.close,
        )
    return JSONResponse(await collect(request, chat))


async def collect(request: Request, chat: StartedChat) -> dict[str, Any]:
    """The non-streaming body: the fold of every chunk (the usage chunk included); generation ends early if the
    client leaves."""
    encoder, folded = chat.encoder, ChatFold()

    def fold_read(index: int, events: list[OutputEvent]) -> None:
        folded.add_events(encoder, index, events)
        if encoder.finished:
            for chunk in encoder.closing():
                folded.add(chunk)

    async def gather() -> dict[str, Any]:
        async with chat.choices:  # the engine requests end before their slots are given back
            async for _ in per_read(chat, fold_read):
                pass  # `fold_read` passes nothing on
        return folded.body()

    return await until_disconnect(request.receive, gather())


def renderer(door: str) -> Callable[[Request, Runtime], Awaitable[dict[str, Any]]]:
    """The OpenAI-side doors' part of `POST /v1/render?door=openai|minimax`: a chat-completions body, read
    and checked as its endpoint reads it, then shaped and rendered; nothing is generated."""

    async def render_request(request: Request, runtime: Runtime) -> dict[str, Any]:
        return await render_chat(runtime, door, await _read(request, runtime))

    return render_request
