"""Request bodies, read with a size cap: refused while reading, never buffered whole first."""

from __future__ import annotations

from starlette.requests import Request

from rolecall.core.errors import RequestTooLarge

_TOO_LARGE = "Request exceeds the maximum allowed number of bytes."


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)
