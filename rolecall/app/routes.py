"""The Messages API routes, served under `/v1` and `/anthropic/v1`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from rolecall.app.body import read_body
from rolecall.app.responses import EventStreamResponse, JSONResponse, until_disconnect
from rolecall.engines.registry import ServedModel
from rolecall.protocol.events import SUCCESS
from rolecall.protocol.errors import InvalidRequest, NotFound
from rolecall.protocol.models import model_object, model_page
from rolecall.protocol.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.validation import parse_body
from rolecall.service.fold import fold
from rolecall.service.messages import count_prompt, message_events, prepare
from rolecall.service.runtime import Runtime

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    request.app.state.auth.check(request.headers)
    return runtime


def _betas(request: Request) -> frozenset[str]:
    """`anthropic-beta` values: comma-separated, possibly repeated; an open set, never refused."""
    return frozenset(v.strip() for header in request.headers.getlist("anthropic-beta") for v in header.split(","))


@router.post("/v1/messages", name="create_message")
async def create_message(request: Request) -> Response:
    runtime = _runtime(request)
    body = parse_body(MessagesRequest, await read_body(request, runtime.settings.max_body_bytes))
    call = await prepare(runtime, body, _betas(request))
    events = message_events(runtime, call)
    if body.stream is True:
        return EventStreamResponse(
            events, ping_interval=runtime.settings.ping_interval, request_id=request.state.request_id
        )
    return JSONResponse(await until_disconnect(request.receive, fold(events)))


@router.post("/v1/messages/count_tokens", name="count_tokens")
async def count_tokens(request: Request) -> Response:
    runtime = _runtime(request)
    body = parse_body(CountTokensRequest, await read_body(request, runtime.settings.max_body_bytes))
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
