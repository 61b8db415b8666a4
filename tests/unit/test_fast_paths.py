"""The per-token fast paths give the bytes and bodies of the general path: the OpenAI-side doors' frames
(`ChunkEncoder.frames`, a prebuilt template per plain delta) are byte for byte the `data:` frames of the chunks
`encode` builds, and the folds fed one read's events at a time (`ChatFold.add_events`, `MessageFold.add_events`)
are the folds of every chunk or event (a fold is the non-streaming body: streamed and not must agree)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from rolecall.core.events import BlockDelta, BlockSigned, BlockStarted, BlockStopped, Finished, OutputEvent, Started
from rolecall.core.usage import Usage
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.fold import MessageFold
from rolecall.protocol.openai.encoder import ChunkEncoder, ReasoningStyle, data_frame
from rolecall.protocol.openai.fold import ChatFold, fold

TEXTS = [
    "Hello",
    "",
    'quote " backslash \\ newline \n tab \t',
    "\x00\x1f\x7f",
    "é 😀 \u2028\u2029",
    "100% %s %d",
    "a" * 5000,
]
STYLES: list[ReasoningStyle] = ["field", "split", "inline"]
# Model names are the client's: JSON escapes and `%` must not break the template.
MODELS = ["MiniMax-M2.7", 'we"ird\\ %d %s % 模型']

REPLY: list[OutputEvent] = [
    Started(Usage(20, 5)),
    BlockStarted(0, "thinking"),
    BlockDelta(0, "thinking", "The user"),
    BlockDelta(0, "thinking", ""),
    BlockDelta(0, "thinking", " greets."),
    BlockSigned(0, "ab" * 32),
    BlockStopped(0),
    BlockStarted(1, "text"),
    BlockDelta(1, "text", "Hello"),
    BlockDelta(1, "text", ""),
    BlockDelta(1, "text", " 100%!"),
    BlockStopped(1),
    BlockStarted(2, "tool_call", "get_weather"),
    BlockDelta(2, "tool_call", '{"city": "Pa'),
    BlockDelta(2, "tool_call", 'ris"}'),
    BlockStopped(2),
    Finished("tool_calls", None, Usage(20, 5, 9)),
]


def _twins(style: ReasoningStyle, model: str = "m", n: int = 1) -> tuple[ChunkEncoder, ChunkEncoder]:
    """Two encoders that build the same chunks (same id and time), so that one can take each path."""
    return tuple(  # type: ignore[return-value]
        ChunkEncoder(model, n=n, style=style, include_usage=True, id="chatcmpl-x", created=1700000000) for _ in range(2)
    )


def _chunks(encoder: ChunkEncoder, events: list[tuple[int, OutputEvent]]) -> list[dict[str, Any]]:
    return [chunk for index, event in events for chunk in encoder.encode(index, event)]


@pytest.fixture
def restart_ids(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Tool-call and message ids are random: they are numbered instead, from 0 again after each call of the
    fixture's function, so that the general path run after the fast one builds the same ids."""
    counter = itertools.count()

    def numbered(prefix: str) -> str:
        return f"{prefix}{next(counter)}"

    def restart() -> None:
        nonlocal counter
        counter = itertools.count()

    for module in ("rolecall.protocol.openai.encoder", "rolecall.protocol.anthropic.encoder"):
        monkeypatch.setattr(f"{module}.new_id", numbered)
    return restart


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("kind", ["text", "thinking"])
def test_a_delta_frame_is_the_encoders_chunk(kind: str, text: str, style: ReasoningStyle, model: str) -> None:
    fast, general = _twins(style, model, n=12)
    event = BlockDelta(0, kind, text)  # type: ignore[arg-type]
    assert fast.frames(11, [event]) == b"".join(data_frame(chunk) for chunk in general.encode(11, event))


@pytest.mark.parametrize("style", STYLES)
def test_a_reply_framed_per_read_is_its_chunks_and_counts_the_same(
    style: ReasoningStyle, restart_ids: Callable[[], None]
) -> None:
    fast, general = _twins(style)
    sent = ChatFold()
    framed = b"".join(fast.frames(0, [event], sent) for event in REPLY)
    restart_ids()
    chunks = _chunks(general, [(0, event) for event in REPLY])
    assert framed == b"".join(data_frame(chunk) for chunk in chunks)
    assert fast.usage() == general.usage()  # reasoning deltas counted once each, on either path
    assert sent.body() == fold(chunks)  # what MiniMax's closing frame folds


@pytest.mark.parametrize("style", STYLES)
def test_the_chat_fold_per_read_is_the_fold_of_every_chunk(
    style: ReasoningStyle, restart_ids: Callable[[], None]
) -> None:
    fast, general = _twins(style, n=2)
    events = [(index, event) for event in REPLY for index in (1, 0)]
    folded = ChatFold()
    for start in range(0, len(events), 3):  # reads of a few events each, one choice's each
        for index, read in itertools.groupby(events[start : start + 3], key=lambda item: item[0]):
            folded.add_events(fast, index, [event for _, event in read])
    for chunk in fast.closing():
        folded.add(chunk)
    restart_ids()
    assert folded.body() == fold(_chunks(general, events) + general.closing())


def test_the_message_fold_per_read_is_the_fold_of_every_event(restart_ids: Callable[[], None]) -> None:
    fast, general = MessageEncoder("m"), MessageEncoder("m")
    folded, whole = MessageFold(), MessageFold()
    for start in range(0, len(REPLY), 4):
        folded.add_events(fast, REPLY[start : start + 4])
    restart_ids()
    for event in REPLY:
        for encoded in general.encode(event):
            whole.add(encoded)
    message = folded.message()
    assert message == whole.message()
    assert message["content"][0]["thinking"] == "The user greets."
    assert message["content"][1] == {"type": "text", "text": "Hello 100%!"}
    assert message["content"][2]["input"] == {"city": "Paris"}
