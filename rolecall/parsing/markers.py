"""Finding markers (stop strings, tags) in streamed text that may split them across chunks."""

from __future__ import annotations

import re
from collections.abc import Iterable


class PartialMarkers:
    """How much of the end of streamed text could still grow into one of `markers`.

    That much text must be held back: emitting it could leak the first characters of a marker. Built once
    per set of markers into one anchored regular expression over their prefixes (`S(?:T(?:O)?)?` for `STOP`),
    so a check is one C call over the last few characters, whatever the number of markers."""

    def __init__(self, markers: Iterable[str]) -> None:
        markers = [marker for marker in markers if marker]
        # A held end is at most one character shorter than the longest marker (a whole one would have matched).
        self._window = max((len(marker) for marker in markers), default=1) - 1
        pattern = _prefixes([marker[: self._window] for marker in markers])
        self._tail = re.compile(f"(?:{pattern})\\Z") if pattern else None

    def length(self, buffer: str) -> int:
        """The length of the longest end of `buffer` that is a prefix of a marker (0: none)."""
        if self._tail is None:
            return 0
        found = self._tail.search(buffer, max(0, len(buffer) - self._window))
        return len(buffer) - found.start() if found is not None else 0


def _prefixes(words: list[str]) -> str:
    """A pattern matching every non-empty prefix of `words`: per word, its first character and the rest as
    nested optional groups (`S(?:T(?:O)?)?`). Cheap to build: it is built once per request with stops."""
    alternatives = []
    for word in words:
        if word:
            # A backslash makes any character but an ASCII letter or digit literal (re.escape per character
            # would cost more than the rest of the build).
            escaped = [char if char.isascii() and char.isalnum() else "\\" + char for char in word]
            alternatives.append("(?:".join(escaped) + ")?" * (len(escaped) - 1))
    return "|".join(alternatives)
