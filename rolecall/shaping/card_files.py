"""Character card containers: a PNG with a base64 JSON `tEXt` chunk (`ccv3` wins over `chara`) or bare JSON.

PNG chunks are read here with struct and zlib (a card's image is never decoded), and every failure is an
`InvalidRequest` naming what is wrong with the file and what to do about it.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from typing import Any

from rolecall.core.errors import InvalidRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# `ccv3` (V3) wins over `chara` (V2, often a back-filled copy of the same card) when both are present.
CARD_CHUNKS = ("ccv3", "chara")
_CHUNK_HEAD = struct.Struct(">I4s")


def card_object(raw: bytes) -> dict[str, Any]:
    """The card's JSON object, from PNG bytes or JSON bytes."""
    if raw.startswith(PNG_SIGNATURE):
        return _decode_chunk_text(*_card_chunk(raw))
    stripped = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith(b"{"):
        raise InvalidRequest("card: not a character card; send a PNG card or a JSON card object")
    return _json_object(stripped, "the JSON card")


def png_text_chunks(raw: bytes) -> dict[str, bytes]:
    """The `tEXt` chunks of a PNG, keyword (lower-cased) -> text bytes; the file's structure is checked."""
    texts: dict[str, bytes] = {}
    offset = len(PNG_SIGNATURE)
    while True:
        if offset + _CHUNK_HEAD.size > len(raw):
            raise InvalidRequest("card: the PNG file is truncated (no IEND chunk); export the card again")
        length, kind = _CHUNK_HEAD.unpack_from(raw, offset)
        start = offset + _CHUNK_HEAD.size
        end = start + length
        if end + 4 > len(raw):
            raise InvalidRequest("card: the PNG file is truncated inside a chunk; export the card again")
        data = raw[start:end]
        (crc,) = struct.unpack_from(">I", raw, end)
        if zlib.crc32(kind + data) != crc:
            name = kind.decode("latin-1", "replace")
            raise InvalidRequest(f"card: the PNG file is damaged (chunk {name!r} fails its CRC); export the card again")
        if kind == b"tEXt":
            keyword, _, text = data.partition(b"\x00")
            texts.setdefault(keyword.decode("latin-1").lower(), text)
        if kind == b"IEND":
            return texts
        offset = end + 4


def _card_chunk(raw: bytes) -> tuple[str, bytes]:
    texts = png_text_chunks(raw)
    for keyword in CARD_CHUNKS:
        if keyword in texts:
            return keyword, texts[keyword]
    raise InvalidRequest(
        "card: the PNG holds no character card (no `ccv3` or `chara` tEXt chunk); "
        "export it from a card editor as a character card PNG"
    )


def _decode_chunk_text(keyword: str, text: bytes) -> dict[str, Any]:
    try:
        decoded = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"card: the PNG's `{keyword}` chunk is not valid base64; export the card again") from None
    return _json_object(decoded, f"the PNG's `{keyword}` chunk")


def _json_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"card: {where} is not valid UTF-8 JSON ({exc}); export the card again") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"card: {where} must hold a JSON object, not {type(value).__name__}")
    return value


def png_with_card(image: bytes, card: dict[str, Any], keyword: str = "chara") -> bytes:
    """`image` (a PNG) with `card` written into a `tEXt` chunk before IEND (used by tests and exports)."""
    payload = base64.b64encode(json.dumps(card, ensure_ascii=False).encode())
    data = keyword.encode("latin-1") + b"\x00" + payload
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    iend = image.rindex(b"IEND") - 4
    return image[:iend] + chunk + image[iend:]
