"""`POST /v1/characters/import`: a character card (PNG or JSON; raw body or multipart) -> MiniMax roles."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app.auth import authenticated
from rolecall.app.body import read_body
from rolecall.app.responses import JSONResponse
from rolecall.core.errors import InvalidRequest, RequestTooLarge
from rolecall.service.characters import import_character as character_roles

# Card PNGs carry character art, a few MiB at most; the cap is checked while reading.
MAX_CARD_BYTES = 16 * 2**20

router = APIRouter()


@router.post("/v1/characters/import", name="import_character", dependencies=[Depends(authenticated)])
async def import_character(request: Request) -> Response:
    try:
        raw = await read_body(request, MAX_CARD_BYTES)
    except RequestTooLarge:
        raise InvalidRequest(
            f"card: the file is larger than {MAX_CARD_BYTES // 2**20} MiB; a character card is a PNG or JSON "
            "of a few MiB at most"
        ) from None
    user = request.query_params.get("user", "")
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        raw, user = _multipart_card(content_type, raw, user)
    return JSONResponse(character_roles(raw, user))


def _multipart_card(content_type: str, raw: bytes, user: str) -> tuple[bytes, str]:
    """The `card` part (else the first file part) of a multipart body, and a `user` field if sent."""
    parsed = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    if not parsed.is_multipart():
        raise InvalidRequest("card: the multipart body could not be read; send the card as a `card` file field")
    card: bytes | None = None
    for part in parsed.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if name == "user":
            user = payload.decode("utf-8", "replace").strip()
        elif name == "card" or (card is None and part.get_filename()):
            card = payload
    if card is None:
        raise InvalidRequest("card: the multipart body has no `card` file field; attach the card as `card`")
    return card, user
