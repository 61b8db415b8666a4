"""Server-sent events framing: `event: <type>` then compact JSON. The `event:` line is mandatory:
both SDKs dispatch on it and drop `data:`-only frames."""

from __future__ import annotations

import orjson

from rolecall.protocol.events import PING, Event

PING_FRAME = b"event: ping\ndata: " + orjson.dumps(PING) + b"\n\n"

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def frame(event: Event) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
