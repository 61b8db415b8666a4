"""Server-sent events framing: `event: <type>` then compact JSON. The `event:` line is mandatory:
both SDKs dispatch on it and drop `data:`-only frames."""

from __future__ import annotations

import orjson

from rolecall.core.errors import RolecallError
from rolecall.core.events import BlockDelta, OutputEvent
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.errors import error_envelope
from rolecall.protocol.anthropic.events import PING, Event

PING_FRAME = b"event: ping\ndata: " + orjson.dumps(PING) + b"\n\n"
# A text delta's frame around its index and its text (JSON): the bytes `frame` makes of the event the encoder
# builds, without building it. One per streamed token.
_TEXT_DELTA = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'
)


def frame(event: Event) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def frames(encoder: MessageEncoder, events: list[OutputEvent]) -> bytes:
    """The frames of the events of one read of the engine's output, joined (one socket write)."""
    out = []
    for event in events:
        if type(event) is BlockDelta and event.kind == "text":
            out.append(_TEXT_DELTA % (event.index, orjson.dumps(event.text)))
        else:
            out += [frame(encoded) for encoded in encoder.encode(event)]
    return b"".join(out)


def error_frame(error: RolecallError, request_id: str | None) -> bytes:
    """A failure after the stream began: an `error` event in the error envelope."""
    return frame(error_envelope(error, request_id))
