"""protocol/anthropic/sse.frames: the frames of one read's events, joined, are byte for byte the frames of the
events the encoder builds (text deltas take a prebuilt template, one per streamed token)."""

from __future__ import annotations

import pytest

from rolecall.core.events import BlockDelta, BlockSigned, BlockStarted, BlockStopped, Finished, OutputEvent
from rolecall.core.usage import Usage
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.sse import frame, frames

TEXTS = [
    " w5",
    "",
    'quote " backslash \\ newline \n tab \t',
    "\x00\x1f\x7f",
    "é 😀 \u2028\u2029",
    "</script>&<",
    "a" * 5000,
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("index", [0, 9, 1234])
def test_a_text_delta_is_the_encoders_frame(text: str, index: int) -> None:
    encoder = MessageEncoder("m")
    event = BlockDelta(index, "text", text)
    assert frames(encoder, [event]) == b"".join(frame(encoded) for encoded in encoder.encode(event))


def test_a_batch_of_every_kind_is_its_frames_in_order() -> None:
    encoder = MessageEncoder("MiniMax-M2.7")
    events: list[OutputEvent] = [
        BlockStarted(0, "thinking"),
        BlockDelta(0, "thinking", "hmm"),
        BlockSigned(0, "sig"),
        BlockStopped(0),
        BlockStarted(1, "text"),
        BlockDelta(1, "text", "Hello"),
        BlockDelta(1, "text", " world"),
        BlockStopped(1),
        BlockDelta(2, "tool_call", '{"a": 1}'),
        Finished("end", None, Usage(10, 2, 5)),
    ]
    expected = b"".join(frame(encoded) for event in events for encoded in encoder.encode(event))
    assert frames(encoder, events) == expected
    assert expected.count(b"event: ") == 11  # Finished: message_delta and message_stop
