"""The one interface every incremental parser shares, and how parsers compose.

A parser is fed pieces of a stream as they arrive and answers with what it can already emit; `flush` at the
end of the stream emits what it held back (a partial stop sequence, a half-open tag, an unterminated line).
Batches go in and out as lists, so one socket read of many tokens costs one call per stage, not one per token.
Modelled on httpx's incremental decoders.

A chain is flat however it was built: `Chained(Chained(a, b), c)` runs a, b, c in one loop, so a piece costs
one `feed` per stage and nothing per level of nesting (this is on the path of every streamed token)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


class ChunkParser(Protocol[In, Out]):
    """Incremental: `feed` as pieces arrive, `flush` once at the end; both return pieces in stream order."""

    def feed(self, piece: In) -> list[Out]: ...

    def flush(self) -> list[Out]: ...


def feed_all(parser: ChunkParser[A, B], pieces: Iterable[A]) -> list[B]:
    """Feed a batch of pieces through one parser: its outputs, in order."""
    out: list[B] = []
    for piece in pieces:
        out += parser.feed(piece)
    return out


class Chained(Generic[A, B, C]):
    """Two parsers as one: what the first emits is fed to the second; `flush` flushes the first into the
    second, then the second."""

    def __init__(self, first: ChunkParser[A, B], second: ChunkParser[B, C]) -> None:
        self._stages: list[ChunkParser[Any, Any]] = [*_stages(first), *_stages(second)]
        self._head, *self._tail = self._stages

    def feed(self, piece: A) -> list[C]:
        pieces = self._head.feed(piece)
        for stage in self._tail:
            if not pieces:
                break  # held back: nothing for the stages after this one
            # Most pieces pass a stage one for one: skip building a list for a batch of one.
            pieces = stage.feed(pieces[0]) if len(pieces) == 1 else feed_all(stage, pieces)
        return pieces

    def flush(self) -> list[C]:
        pieces: list[Any] = []
        for stage in self._stages:  # each stage is fed what the ones before it let go, then flushed
            pieces = feed_all(stage, pieces) + stage.flush()
        return pieces


class Passthrough(Generic[A]):
    """The empty chain: every piece goes through as it is, nothing is held."""

    def feed(self, piece: A) -> list[A]:
        return [piece]

    def flush(self) -> list[A]:
        return []


def chain(*parsers: ChunkParser[A, A]) -> ChunkParser[A, A]:
    """Parsers of one piece type in order, as one parser (`Passthrough` when there are none)."""
    if not parsers:
        return Passthrough()
    composed = parsers[0]
    for parser in parsers[1:]:
        composed = Chained(composed, parser)
    return composed


def _stages(parser: ChunkParser[Any, Any]) -> list[ChunkParser[Any, Any]]:
    return parser._stages if isinstance(parser, Chained) else [parser]
