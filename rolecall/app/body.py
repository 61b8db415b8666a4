"""Request bodies, read with a size cap: refused while reading, never buffered whole first."""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request

from rolecall.app.responses import ClientDisconnected
from rolecall.core.errors import RequestTooLarge

log = logging.getLogger("rolecall")

_TOO_LARGE = "Request exceeds the maximum allowed number of bytes."


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(_TOO_LARGE)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody to answer, nothing broken: one line, no traceback (the access log has no line for it).
        log.info("client disconnected while sending its body (%d bytes of %s)", size, declared or "chunked")
        raise ClientDisconnected from None
    return b"".join(chunks)
