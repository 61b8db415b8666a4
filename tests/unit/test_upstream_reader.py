"""The upstream stream reader (parsing/upstream_sse.py + engines/upstream_stream.py): the same chunks whatever
the socket reads' boundaries, and a stream that ends without [DONE] judged by whether it finished."""

from __future__ import annotations

import json

import pytest

from rolecall.core.chunks import EngineChunk, FinishChunk, PrefillChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.engines.upstream_errors import ReplicaFault
from rolecall.engines.upstream_stream import ChatStreamDecoder
from rolecall.parsing.chain import Chained, feed_all
from rolecall.parsing.upstream_sse import UpstreamSSE
from tests.support import vllm_streams as vllm


def wire(chunks: list[dict], *, done: bool = True, newline: bytes = b"\n") -> bytes:
    """A stream as a server writes it: `data:` lines, blank separators, a comment, multi-byte text."""
    lines = [b": keep-alive"] + [b"data: " + json.dumps(c, ensure_ascii=False).encode() for c in chunks]
    lines += [b"data: [DONE]"] if done else []
    return b"".join(line + newline + newline for line in lines)


def read(pieces: list[bytes]) -> list[EngineChunk]:
    """The reader's output for the body arriving as `pieces` (one per socket read), flushed at the end."""
    reader = Chained(UpstreamSSE(), ChatStreamDecoder())
    return feed_all(reader, pieces) + reader.flush()


STREAM = [
    *vllm.text_reply("Héllo — wörld 🌍 ok")[:-1],
    vllm.chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a": '}}]}),
    vllm.usage_only(120, 7, cached=64),
]
EXPECTED = [
    TextChunk("Héllo"),
    TextChunk(" —"),
    TextChunk(" wörld"),
    TextChunk(" 🌍"),
    TextChunk(" ok"),
    FinishChunk("stop"),
    ToolCallChunk(0, "c1", "f", '{"a": '),
    PrefillChunk(64, 120),
    UsageChunk(120, 7, 64),
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_split_point_gives_the_same_chunks(newline: bytes) -> None:
    body = wire(STREAM, newline=newline)
    assert read([body]) == EXPECTED
    for cut in range(1, len(body)):  # two reads, split at every byte (inside UTF-8 sequences too)
        assert read([body[:cut], body[cut:]]) == EXPECTED, cut
    assert read([body[i : i + 1] for i in range(len(body))]) == EXPECTED  # one byte per read


def test_one_read_of_many_events_is_one_batch() -> None:
    lines = UpstreamSSE()
    payloads = lines.feed(wire(STREAM))
    assert len(payloads) == len(STREAM) + 1 and payloads[-1] == b"[DONE]"
    assert lines.feed(b'data: {"partial') == [] and lines.flush() == [b'{"partial']


def test_what_follows_done_is_ignored() -> None:
    body = wire(STREAM) + b"data: {not json}\n\n"
    assert read([body]) == EXPECTED


def test_a_finished_stream_without_done_is_complete() -> None:
    """Some servers end the body after the finish (and usage) without `[DONE]`: nothing was cut off."""
    assert read([wire(STREAM, done=False)]) == EXPECTED
    last_line_unterminated = wire(STREAM, done=False).rstrip(b"\n")
    assert read([last_line_unterminated]) == EXPECTED


def test_a_stream_cut_off_before_its_finish_is_a_replica_fault() -> None:
    cut = wire(vllm.broken_off(), done=False)
    with pytest.raises(ReplicaFault, match=r"ended after 3 chunk\(s\) without a finish_reason or \[DONE\]"):
        read([cut])
    with pytest.raises(ReplicaFault, match="not JSON"):
        read([cut + b'data: {"choices": [{"delta": {"content": "x'])  # cut mid-line at EOF
