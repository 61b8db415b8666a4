"""Stop sequences matched on the visible text stream, exactly, also across chunk boundaries."""

from __future__ import annotations

from rolecall.parsing.markers import partial_marker_length


class StopMatcher:
    """Feed text as it arrives; get back what is safe to show, and the stop sequence once one matches.

    Text is held back only while it could still become a match, so a stop sequence is never partially
    emitted. Of several matches the one that completes earliest wins; ties go to the longer string.
    """

    def __init__(self, stop_sequences: tuple[str, ...]) -> None:
        self._stops = tuple(sorted(set(stop_sequences), key=len, reverse=True))
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """Return the text that may be emitted now. After a match, `matched` is set and the rest is dropped."""
        if not self._stops:
            return text
        if self.matched is not None:
            return ""
        buffer = self._held + text
        best_end, best_start = len(buffer) + 1, 0
        for stop in self._stops:  # longest first, so a strict `<` keeps the longer one on ties
            start = buffer.find(stop)
            if start >= 0 and start + len(stop) < best_end:
                best_end, best_start, self.matched = start + len(stop), start, stop
        if self.matched is not None:
            self._held = ""
            return buffer[:best_start]
        keep = partial_marker_length(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The text still held back when the stream ends: it never became a match."""
        held, self._held = self._held, ""
        return held
