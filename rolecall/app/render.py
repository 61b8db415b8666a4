"""`POST /v1/render`: any door's request body in, what the model saw out (turns, prompt text, tokens).

Each door plugs in one `DoorShaper`: its request body -> (requested model, served model, GenerationRequest,
prompt tokens), through the very shaping and counting its own endpoint uses. The door is `?door=...`, else
the path it is served under (`/anthropic/v1/render`), else `anthropic`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from rolecall.app.body import read_body
from rolecall.app.responses import JSONResponse
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import InvalidRequest
from rolecall.engines.registry import ServedModel
from rolecall.protocol.limits import RequestCaps, check_caps
from rolecall.protocol.requests import CountTokensRequest
from rolecall.protocol.validation import parse_body
from rolecall.service.messages import count_prompt
from rolecall.service.render import rendering
from rolecall.service.runtime import Runtime

Shaped = tuple[str, ServedModel, GenerationRequest, int]  # requested model, served model, shaped, tokens
DoorShaper = Callable[[Runtime, Request, bytes], Awaitable[Shaped]]

router = APIRouter()


async def _anthropic(runtime: Runtime, request: Request, body: bytes) -> Shaped:
    settings = runtime.settings
    parsed = parse_body(CountTokensRequest, body)  # the Messages body; generation fields are ignored
    check_caps(parsed, RequestCaps(settings.max_messages, settings.max_tools, settings.max_block_chars))
    betas = frozenset(v.strip() for h in request.headers.getlist("anthropic-beta") for v in h.split(","))
    model, generation, tokens = await count_prompt(runtime, parsed, betas)
    return parsed.model, model, generation, tokens


DOORS: dict[str, DoorShaper] = {"anthropic": _anthropic}


def _door(request: Request) -> str:
    door = request.query_params.get("door") or ("anthropic" if request.url.path.startswith("/anthropic/") else "")
    door = door or "anthropic"
    if door not in DOORS:
        raise InvalidRequest(f"door: {door!r} is not served here; use one of: {', '.join(sorted(DOORS))}")
    return door


@router.post("/v1/render", name="render")
async def render(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    request.app.state.auth.check(request.headers)
    door = _door(request)
    body = await read_body(request, runtime.settings.max_body_bytes)
    requested, model, generation, tokens = await DOORS[door](runtime, request, body)
    return JSONResponse(await rendering(door, requested, model, generation, tokens))
