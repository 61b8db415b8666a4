"""The OpenAI door: `POST /v1/chat/completions`, SDK-strict chunks or the folded `chat.completion`, and
errors in OpenAI's envelope with the real HTTP status (plus MiniMax's `base_resp`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app.auth import authenticated
from rolecall.app.chat import DONE_FRAME, StartedChat, per_read, respond, start_chat
from rolecall.app.responses import JSONResponse
from rolecall.core.caller import Caller
from rolecall.core.errors import RolecallError
from rolecall.core.events import OutputEvent
from rolecall.protocol.openai.encoder import data_frame
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


def _frames(chat: StartedChat) -> AsyncGenerator[bytes, None]:
    encoder = chat.encoder

    def frames(index: int, events: list[OutputEvent]) -> bytes:
        # One write per read of the engine's output; the usage chunk and `[DONE]` go with the last one.
        body = encoder.frames(index, events)
        if encoder.finished:
            body += b"".join([data_frame(chunk) for chunk in encoder.closing()]) + DONE_FRAME
        return body

    return per_read(chat, frames)


@router.post(PATH, name="create_chat_completion")
async def create_chat_completion(request: Request, caller: CallerDep) -> Response:
    return await respond(request, await start_chat(request, caller), _frames, _error_frame)
