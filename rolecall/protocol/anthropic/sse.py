"""Server-sent events framing: `event: <type>` then compact JSON. The `event:` line is mandatory:
both SDKs dispatch on it and drop `data:`-only frames."""

from __future__ import annotations

import orjson

from rolecall.core.errors import RolecallError
from rolecall.protocol.anthropic.errors import error_envelope
from rolecall.protocol.anthropic.events import PING, Event

PING_FRAME = b"event: ping\ndata: " + orjson.dumps(PING) + b"\n\n"


def frame(event: Event) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_frame(error: RolecallError, request_id: str | None) -> bytes:
    """A failure after the stream began: an `error` event in the error envelope."""
    return frame(error_envelope(error, request_id))
