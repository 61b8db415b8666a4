"""Finding markers (stop strings, tags) in streamed text that may split them across chunks."""

from __future__ import annotations


def partial_marker_length(buffer: str, markers: tuple[str, ...]) -> int:
    """Length of the longest end of `buffer` that could still grow into one of `markers`.

    That much text must be held back: emitting it could leak the first characters of a marker."""
    longest = min(len(buffer), max((len(marker) for marker in markers), default=1) - 1)
    for size in range(longest, 0, -1):
        tail = buffer[-size:]
        if any(marker.startswith(tail) for marker in markers):
            return size
    return 0
