"""MiniMax's native door: `POST /v1/text/chatcompletion_v2`. The OpenAI door's request and chunks, with
MiniMax's error form (HTTP 200, `base_resp.status_code` ≠ 0, no choices) and, at the end of a stream,
its closing `chat.completion` frame (the whole reply, usage, `base_resp`) before `[DONE]`."""

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
from rolecall.protocol.minimax.responses import closing_frame, error_body
from rolecall.protocol.openai.encoder import data_frame
from rolecall.protocol.openai.fold import ChatFold

router = APIRouter()
CallerDep = Annotated[Caller, Depends(authenticated)]
PATH = "/v1/text/chatcompletion_v2"


def error_response(error: RolecallError, request_id: str | None) -> JSONResponse:
    """MiniMax's documented error form: HTTP 200 and the code in `base_resp` (a limited key's rate-limit
    headers still go with it; `retry-after` does not, on a 200)."""
    return JSONResponse(error_body(error), status_code=200, headers=error.extra_headers)


def _error_frame(error: RolecallError) -> bytes:
    return data_frame(error_body(error)) + DONE_FRAME


def _frames(chat: StartedChat) -> AsyncGenerator[bytes, None]:
    encoder, sent = chat.encoder, ChatFold()

    def frames(index: int, events: list[OutputEvent]) -> bytes:
        # One write per read of the engine's output; the usage chunk, the closing frame (the fold of every chunk
        # sent) and `[DONE]` go with the last one.
        body = encoder.frames(index, events, sent)
        if encoder.finished:
            closing = encoder.closing()
            for chunk in closing:
                sent.add(chunk)
            body += b"".join([data_frame(chunk) for chunk in closing])
            body += data_frame(closing_frame(sent.body(), encoder.usage())) + DONE_FRAME
        return body

    return per_read(chat, frames)


@router.post(PATH, name="create_chatcompletion_v2")
async def create_chatcompletion_v2(request: Request, caller: CallerDep) -> Response:
    return await respond(request, await start_chat(request, caller), _frames, _error_frame)
