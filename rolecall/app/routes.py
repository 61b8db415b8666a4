"""The Messages API routes, served under `/v1` and `/anthropic/v1`."""

from __future__ import annotations

import contextlib
from typing import TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rolecall.app.body import read_body
from rolecall.app.responses import EventStreamResponse, JSONResponse, until_disconnect
from rolecall.core.errors import InvalidRequest, NotFound, Overloaded
from rolecall.engines.registry import ServedModel
from rolecall.protocol.events import SUCCESS
from rolecall.protocol.limits import RequestCaps, check_caps
from rolecall.protocol.models import model_object, model_page
from rolecall.protocol.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.validation import parse_body
from rolecall.service.admission import Pass
from rolecall.service.fold import fold
from rolecall.service.messages import (
    OpenedGeneration,
    PreparedCall,
    count_prompt,
    message_events,
    open_generation,
    prepare,
)
from rolecall.service.runtime import Runtime

router = APIRouter()
Body = TypeVar("Body", MessagesRequest, CountTokensRequest)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    request.app.state.auth.check(request.headers)
    return runtime


def _betas(request: Request) -> frozenset[str]:
    """`anthropic-beta` values: comma-separated, possibly repeated; an open set, never refused."""
    return frozenset(v.strip() for header in request.headers.getlist("anthropic-beta") for v in header.split(","))


async def _read(request: Request, runtime: Runtime, model: type[Body]) -> Body:
    """The body, read under the size cap, validated, and checked against the request caps."""
    settings = runtime.settings
    body = parse_body(model, await read_body(request, settings.max_body_bytes))
    check_caps(body, RequestCaps(settings.max_messages, settings.max_tools, settings.max_block_chars))
    return body


async def _admit(request: Request, runtime: Runtime, call: PreparedCall) -> Pass:
    """An engine slot, waited for while the client stays; 529 when the queue is full or too slow."""
    try:
        return await until_disconnect(request.receive, runtime.admission.gate(call.model.id).enter())
    except Overloaded:
        runtime.metrics.shed.labels(call.model.id).inc()
        raise


class _Admitted(Response):
    """A stream that ends its generation and gives its engine slot back when it is done, however it ends
    (also if it never started: a client gone before the headers went out)."""

    def __init__(self, inner: Response, opened: OpenedGeneration, admitted: Pass) -> None:
        self._inner = inner
        self._opened = opened
        self._admitted = admitted
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._inner(scope, receive, send)
        finally:
            try:
                await self._opened.close()
            finally:
                self._admitted.release()


@router.post("/v1/messages", name="create_message")
async def create_message(request: Request) -> Response:
    runtime = _runtime(request)
    body = await _read(request, runtime, MessagesRequest)
    call = await prepare(runtime, body, _betas(request))
    admitted = await _admit(request, runtime, call)
    try:
        # Failures of the engine call itself (all replicas overloaded...) still get their HTTP status.
        opened = await until_disconnect(request.receive, open_generation(call))
    except BaseException:
        admitted.release()
        raise
    events = runtime.drain.guard(message_events(runtime, call, opened))
    if body.stream is True:
        stream = EventStreamResponse(
            events, ping_interval=runtime.settings.ping_interval, request_id=request.state.request_id
        )
        return _Admitted(stream, opened, admitted)
    try:
        async with contextlib.aclosing(events):  # the engine request ends before its slot is given back
            return JSONResponse(await until_disconnect(request.receive, fold(events)))
    finally:
        try:
            await opened.close()
        finally:
            admitted.release()


@router.post("/v1/messages/count_tokens", name="count_tokens")
async def count_tokens(request: Request) -> Response:
    runtime = _runtime(request)
    body = await _read(request, runtime, CountTokensRequest)
    _, _, tokens = await count_prompt(runtime, body, _betas(request))
    return JSONResponse({"input_tokens": tokens, "base_resp": SUCCESS})


@router.get("/v1/models", name="list_models")
async def list_models(request: Request) -> Response:
    runtime = _runtime(request)
    query = request.query_params
    limit = query.get("limit", "20")
    if not limit.isdigit():
        raise InvalidRequest("limit: Input should be a valid integer")
    items = [_model_item(name, served) for name, served in runtime.registry.listed_names()]
    return JSONResponse(model_page(items, int(limit), query.get("after_id"), query.get("before_id")))


@router.get("/v1/models/{model_id:path}", name="get_model")
async def get_model(request: Request, model_id: str) -> Response:
    runtime = _runtime(request)
    for name, served in runtime.registry.listed_names():
        if name == model_id:
            return JSONResponse(_model_item(name, served))
    raise NotFound(f"model: {model_id}")


def _model_item(name: str, served: ServedModel) -> dict:
    display = served.display_name if name == served.id else f"{name} (served by {served.id})"
    return model_object(name, display, served.created_at, served.engine.info.context_window)
