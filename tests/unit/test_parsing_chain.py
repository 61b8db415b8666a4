"""The parser protocol's composition: outputs flow from the first parser into the second, in order, and
flush drains the first into the second before flushing the second."""

from __future__ import annotations

from rolecall.parsing.chain import Chained, feed_all


class Lines:
    """bytes -> complete lines (the last partial line waits for flush)."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, piece: bytes) -> list[bytes]:
        *lines, self._held = (self._held + piece).split(b"\n")
        return lines

    def flush(self) -> list[bytes]:
        held, self._held = self._held, b""
        return [held] if held else []


class Pairs:
    """lines -> pairs of lines (an odd one out waits for flush)."""

    def __init__(self) -> None:
        self._held: list[bytes] = []

    def feed(self, piece: bytes) -> list[tuple[bytes, ...]]:
        self._held.append(piece)
        if len(self._held) < 2:
            return []
        pair, self._held = tuple(self._held), []
        return [pair]

    def flush(self) -> list[tuple[bytes, ...]]:
        held, self._held = tuple(self._held), []
        return [held] if held else []


def test_chain_feeds_the_first_parser_output_into_the_second_at_every_split() -> None:
    stream = b"a\nb\nc\nd\ne"
    for cut in range(len(stream) + 1):
        chain = Chained(Lines(), Pairs())
        out = feed_all(chain, [stream[:cut], stream[cut:]]) + chain.flush()
        assert out == [(b"a", b"b"), (b"c", b"d"), (b"e",)], cut


def test_flush_of_an_empty_chain_emits_nothing() -> None:
    assert Chained(Lines(), Pairs()).flush() == []
