"""`POST /v1/render`: any door's request body in, what the model saw out (turns, prompt text, tokens).

Each door plugs in one `DoorRenderer` that reads its own request body exactly as its endpoint does and hands it
to the service's `render`. The door is `?door=...`, else `anthropic` (also under `/anthropic/v1/render`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app import anthropic, chat
from rolecall.app.auth import authenticated
from rolecall.app.responses import JSONResponse
from rolecall.core.errors import InvalidRequest
from rolecall.service.runtime import Runtime

DoorRenderer = Callable[[Request, Runtime], Awaitable[dict[str, Any]]]
DOORS: dict[str, DoorRenderer] = {
    "anthropic": anthropic.render_request,
    "openai": chat.renderer("openai"),  # /v1/chat/completions
    "minimax": chat.renderer("minimax"),  # /v1/text/chatcompletion_v2 (the same request)
}

router = APIRouter()


def _door(request: Request) -> DoorRenderer:
    door = request.query_params.get("door") or "anthropic"
    if door not in DOORS:
        raise InvalidRequest(f"door: {door!r} is not served here; use one of: {', '.join(sorted(DOORS))}")
    return DOORS[door]


@router.post("/v1/render", name="render", dependencies=[Depends(authenticated)])
async def render(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse(await _door(request)(request, runtime))
