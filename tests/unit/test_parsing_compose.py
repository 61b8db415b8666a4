"""parsing/chain: a chain is flat however it was nested, `chain()` composes any number of parsers, and the
empty chain passes everything through; outputs agree at every split of the input."""

from __future__ import annotations

from rolecall.parsing.chain import Chained, ChunkParser, Passthrough, chain, feed_all


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


class Loud:
    """lines -> upper-cased lines; blank lines are dropped (a stage may emit nothing)."""

    def feed(self, piece: bytes) -> list[bytes]:
        return [piece.upper()] if piece else []

    def flush(self) -> list[bytes]:
        return [b"END"]  # what a stage emits at the end goes through the stages after it


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


STREAM = b"a\n\nb\nc\nd"
EXPECTED = [(b"A", b"B"), (b"C", b"D"), (b"END",)]


def test_nested_either_way_is_the_same_chain_at_every_split() -> None:
    builds = [
        lambda: Chained(Chained(Lines(), Loud()), Pairs()),
        lambda: Chained(Lines(), Chained(Loud(), Pairs())),
    ]
    for build in builds:
        for cut in range(len(STREAM) + 1):
            parser = build()
            assert feed_all(parser, [STREAM[:cut], STREAM[cut:]]) + parser.flush() == EXPECTED, cut
        parser = build()
        assert feed_all(parser, [STREAM[i : i + 1] for i in range(len(STREAM))]) + parser.flush() == EXPECTED


def test_chain_of_any_length() -> None:
    empty: ChunkParser[bytes, bytes] = chain()
    assert isinstance(empty, Passthrough)
    assert empty.feed(b"x") == [b"x"] and empty.flush() == []
    one = Loud()
    assert chain(one) is one
    three = chain(Loud(), Loud(), Loud())
    assert three.feed(b"a") == [b"A"]
    # Each stage's END goes through the stages after it: the first one's three times, the last one's once.
    assert three.flush() == [b"END", b"END", b"END"]


def test_flush_of_a_chain_fed_nothing_emits_only_what_its_stages_add_at_the_end() -> None:
    assert Chained(Lines(), Pairs()).flush() == []
    assert Chained(Lines(), Loud()).flush() == [b"END"]
