"""Stop sequences matched on the visible text stream, exactly, also across chunk boundaries.

`StopMatcher` scans text; `StopSequences` is the same matcher as a stage of the engine-output chain."""

from __future__ import annotations

import re

from rolecall.core.chunks import EngineChunk, ReasoningChunk, TextChunk, ToolCallChunk
from rolecall.parsing.markers import PartialMarkers


class StopMatcher:
    """Feed text as it arrives; get back what is safe to show, and the stop sequence once one matches.

    Text is held back only while it could still become a match, so a stop sequence is never partially
    emitted. Of several matches the one that completes earliest wins; ties go to the longer string.
    """

    def __init__(self, stop_sequences: tuple[str, ...]) -> None:
        self._stops = tuple(sorted(set(stop_sequences), key=len, reverse=True))
        self._partial = PartialMarkers(self._stops)
        # One C scan says whether any stop is in the text at all (most text has none); which one completes
        # first is then worked out stop by stop.
        self._any = re.compile("|".join(re.escape(stop) for stop in self._stops))
        # Text with none of the stops' first characters can neither hold nor begin one (the common token).
        firsts = "".join(sorted({re.escape(stop[0]) for stop in self._stops if stop}))
        self._firsts = re.compile(f"[{firsts}]") if firsts and all(self._stops) else None
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """Return the text that may be emitted now. After a match, `matched` is set and the rest is dropped."""
        if not self._stops:
            return text
        if self.matched is not None:
            return ""
        if not self._held and self._firsts is not None and self._firsts.search(text) is None:
            return text
        buffer = self._held + text
        if self._any.search(buffer) is None:
            keep = self._partial.length(buffer)
            self._held = buffer[len(buffer) - keep :]
            return buffer[: len(buffer) - keep]
        best_end, best_start = len(buffer) + 1, 0
        for stop in self._stops:  # longest first, so a strict `<` keeps the longer one on ties
            start = buffer.find(stop)
            if start >= 0 and start + len(stop) < best_end:
                best_end, best_start, self.matched = start + len(stop), start, stop
        self._held = ""
        return buffer[:best_start]

    def flush(self) -> str:
        """The text still held back when the stream ends: it never became a match."""
        held, self._held = self._held, ""
        return held


class StopSequences:
    """The engine-output stage that ends the answer at the first stop sequence (a `ChunkParser` of engine chunks).

    Text is matched within one run of answer text: a reasoning or tool-call chunk ends the run, so the text
    held back as a possible stop goes out before it. Once a stop matches, the text before it goes out and
    no content after it does; `matched` tells which stop ended the answer."""

    def __init__(self, stop_sequences: tuple[str, ...]) -> None:
        self._matcher = StopMatcher(stop_sequences)
        self.active = bool(stop_sequences)  # without stop sequences the stage has nothing to do
        self.matched: str | None = None

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        matcher = self._matcher
        if self.matched is not None:
            return [] if isinstance(chunk, (TextChunk, ReasoningChunk, ToolCallChunk)) else [chunk]
        if isinstance(chunk, TextChunk):
            visible = matcher.feed(chunk.text)
            self.matched = matcher.matched
            if visible == chunk.text:
                return [chunk]
            return [TextChunk(visible)] if visible else []
        if isinstance(chunk, (ReasoningChunk, ToolCallChunk)):
            held = matcher.flush()
            return [TextChunk(held), chunk] if held else [chunk]
        return [chunk]

    def flush(self) -> list[EngineChunk]:
        held = self._matcher.flush()
        return [TextChunk(held)] if held else []
