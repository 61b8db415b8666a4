"""Finding markers (stop strings, tags) in streamed text that may split them across chunks."""

from __future__ import annotations

import re
from collections.abc import Iterable


class PartialMarkers:
    """How much of the end of streamed text could still grow into one of `markers`.

    That much text must be held back: emitting it could leak the first characters of a marker. Built once
    per set of markers into one anchored regular expression over the prefixes (a trie: `S(?:T(?:O)?)?` for
    `STOP`), so a check is one C call over the last few characters, whatever the number of markers."""

    def __init__(self, markers: Iterable[str]) -> None:
        markers = [marker for marker in markers if marker]
        # A held end is at most one character shorter than the longest marker (a whole one would have matched).
        self._window = max((len(marker) for marker in markers), default=1) - 1
        pattern = _trie([marker[: self._window] for marker in markers])
        self._tail = re.compile(f"(?:{pattern})\\Z") if pattern else None

    def length(self, buffer: str) -> int:
        """The length of the longest end of `buffer` that is a prefix of a marker (0: none)."""
        if self._tail is None:
            return 0
        found = self._tail.search(buffer, max(0, len(buffer) - self._window))
        return len(buffer) - found.start() if found is not None else 0


def _trie(words: list[str]) -> str:
    """A pattern matching every non-empty prefix of `words`: one alternative per first character, the rest
    of each word an optional group inside it."""
    rests: dict[str, list[str]] = {}
    for word in words:
        if word:
            rests.setdefault(word[0], []).append(word[1:])
    alternatives = []
    for first, tails in rests.items():
        inner = _trie(tails)
        alternatives.append(re.escape(first) + (f"(?:{inner})?" if inner else ""))
    return "|".join(alternatives)
