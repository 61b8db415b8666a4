"""The one interface every incremental parser shares, and how parsers compose.

A parser is fed pieces of a stream as they arrive and answers with what it can already emit; `flush` at the
end of the stream emits what it held back (a partial stop sequence, a half-open tag, an unterminated line).
Batches go in and out as lists, so one socket read of many tokens costs one call per stage, not one per token.
Modelled on httpx's incremental decoders."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

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
        self._first = first
        self._second = second

    def feed(self, piece: A) -> list[C]:
        return feed_all(self._second, self._first.feed(piece))

    def flush(self) -> list[C]:
        return feed_all(self._second, self._first.flush()) + self._second.flush()
