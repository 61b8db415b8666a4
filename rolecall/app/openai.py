"""The OpenAI door: `POST /v1/chat/completions`, SDK-strict chunks or the folded `chat.completion`, and
errors in OpenAI's envelope with the real HTTP status (plus MiniMax's `base_resp`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app.auth import authenticated
from rolecall.app.chat import DONE_FRAME, StartedChat, chunks, data_frame, data_frames, respond, start_chat
from rolecall.app.responses import JSONResponse
from rolecall.core.caller import Caller
from rolecall.core.errors import RolecallError
from rolecall.protocol.openai.errors import error_envelope

router = APIRouter()
CallerDep = Annotated[Caller, Depends(authenticated)]
PATH = "/v1/chat/completions"


def error_response(error: RolecallError, request_id: str | None) -> JSONResponse:
    """An error in OpenAI's envelope, so the SDK raises its typed exception for the status."""
    return JSONResponse(error_envelope(error), status_code=error.status, headers=error.headers())


def _error_frame(error: RolecallError) -> bytes:
    # After the 200 the SDK raises `APIError` on a chunk that carries `error`.
    return data_frame(error_envelope(error)) + DONE_FRAME


async def _frames(chat: StartedChat) -> AsyncGenerator[bytes, None]:
    # One write per read of the engine's output; `[DONE]` goes with the last one.
    async with contextlib.aclosing(chunks(chat)) as source:
        async for batch in source:
            yield data_frames(batch) + DONE_FRAME if chat.encoder.finished else data_frames(batch)


@router.post(PATH, name="create_chat_completion")
async def create_chat_completion(request: Request, caller: CallerDep) -> Response:
    return await respond(request, await start_chat(request, caller), _frames, _error_frame)
