"""The Anthropic door: the Messages API routes, served under `/v1` and `/anthropic/v1`.

A route decodes its request, lets the service run the generation, and encodes the neutral events as
SSE or folds them into one Message; errors are rendered in Anthropic's envelope (with `base_resp`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app.auth import authenticated
from rolecall.app.body import read_body
from rolecall.app.responses import EventStreamResponse, JSONResponse, until_disconnect
from rolecall.core.caller import Caller
from rolecall.core.errors import InvalidRequest, NotFound, RolecallError
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.errors import error_envelope
from rolecall.protocol.anthropic.events import SUCCESS
from rolecall.protocol.anthropic.limits import RequestCaps, check_caps
from rolecall.protocol.anthropic.models import model_object, model_page
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.anthropic.sse import PING_FRAME, error_frame, frames
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.service.anthropic import count_message_tokens, message_body, prepare_message, render_message
from rolecall.service.generation import Generation, start
from rolecall.service.registry import ServedModel
from rolecall.service.runtime import Runtime

router = APIRouter()
Body = TypeVar("Body", MessagesRequest, CountTokensRequest)
CallerDep = Annotated[Caller, Depends(authenticated)]


def error_response(error: RolecallError, request_id: str | None) -> JSONResponse:
    """An error in Anthropic's envelope, with MiniMax's `base_resp`."""
    return JSONResponse(error_envelope(error, request_id), status_code=error.status, headers=error.headers())


def _betas(request: Request) -> frozenset[str]:
    """`anthropic-beta` values: comma-separated, possibly repeated; an open set, never refused."""
    return frozenset(v.strip() for header in request.headers.getlist("anthropic-beta") for v in header.split(","))


async def _read(request: Request, runtime: Runtime, model: type[Body]) -> Body:
    """The body, read under the size cap, validated, and checked against the request caps."""
    settings = runtime.settings
    body = parse_body(model, await read_body(request, settings.max_body_bytes))
    check_caps(body, RequestCaps(settings.max_messages, settings.max_tools, settings.max_block_chars))
    return body


def _sse_frames(generation: Generation, encoder: MessageEncoder, hold_start: float) -> AsyncGenerator[bytes, None]:
    """The frames of each read of the engine's output, joined: one socket write each."""
    # message_start waits for the engine's first chunk (the prompt's cache split), at most one ping interval.
    return generation.each_read(partial(frames, encoder), hold_start)


@router.post("/v1/messages", name="create_message")
async def create_message(request: Request, caller: CallerDep) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await _read(request, runtime, MessagesRequest)
    record = request.state.ledger  # the request's ledger row (RequestContext)
    record.model_asked = body.model
    if body.stream is not True:
        headers = request.state.limit_headers = {}
        work = message_body(runtime, caller, body, _betas(request), record, limit_headers=headers)
        return JSONResponse(await until_disconnect(request.receive, work))
    call = await prepare_message(runtime, body, _betas(request))
    # Waiting for a slot and the engine's early failures end as soon as the client leaves.
    generation = await until_disconnect(request.receive, start(runtime, caller, call, record=record))
    request.state.limit_headers = generation.ticket.headers
    request_id = request.state.request_id
    return EventStreamResponse(
        _sse_frames(generation, MessageEncoder(body.model), runtime.settings.ping_interval),
        ping_frame=PING_FRAME,
        ping_interval=runtime.settings.ping_interval,
        error_frame=lambda error: error_frame(error, request_id),
        on_close=generation.close,
    )


@router.post("/v1/messages/count_tokens", name="count_tokens")
async def count_tokens(request: Request, caller: CallerDep) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await _read(request, runtime, CountTokensRequest)
    # Nothing is generated, so nothing counts; the allow-list and the key's standing apply as to /v1/messages.
    request.state.limit_headers = await runtime.limiter.peek(caller, body.model, runtime.registry.resolve(body.model))
    tokens = await count_message_tokens(runtime, body, _betas(request))
    return JSONResponse({"input_tokens": tokens, "base_resp": SUCCESS})


async def render_request(request: Request, runtime: Runtime) -> dict:
    """This door's part of `POST /v1/render`: a Messages body (generation fields ignored), read and checked as
    `/v1/messages` reads it, then shaped and rendered; nothing is generated."""
    body = await _read(request, runtime, CountTokensRequest)
    return await render_message(runtime, body, _betas(request))


@router.get("/v1/models", name="list_models", dependencies=[Depends(authenticated)])
async def list_models(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    query = request.query_params
    limit = query.get("limit", "20")
    if not limit.isdigit():
        raise InvalidRequest("limit: Input should be a valid integer")
    items = [_model_item(name, served) for name, served in runtime.registry.listed_names()]
    return JSONResponse(model_page(items, int(limit), query.get("after_id"), query.get("before_id")))


@router.get("/v1/models/{model_id:path}", name="get_model", dependencies=[Depends(authenticated)])
async def get_model(request: Request, model_id: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    for name, served in runtime.registry.listed_names():
        if name == model_id:
            return JSONResponse(_model_item(name, served))
    raise NotFound(f"model: {model_id}")


def _model_item(name: str, served: ServedModel) -> dict:
    display = served.display_name if name == served.id else f"{name} (served by {served.id})"
    return model_object(name, display, served.created_at, served.engine.info.context_window)
