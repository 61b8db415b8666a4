"""parsing/markers.PartialMarkers: the end of a text that may still grow into a marker, against the plain
definition (every end length, every marker) on tables and random texts."""

from __future__ import annotations

import random

import pytest

from rolecall.parsing.markers import PartialMarkers


def reference(buffer: str, markers: tuple[str, ...]) -> int:
    """The longest end, at most one character shorter than the longest marker, that some marker starts with."""
    longest = min(len(buffer), max((len(marker) for marker in markers), default=1) - 1)
    for size in range(longest, 0, -1):
        if any(marker.startswith(buffer[-size:]) for marker in markers):
            return size
    return 0


@pytest.mark.parametrize(
    ("buffer", "markers", "held"),
    [
        ("Hello <tool", ("<tool_call>",), 5),
        ("Hello <tool_call", ("<tool_call>",), 10),
        ("Hello", ("<tool_call>",), 0),
        ("a < b", ("<tool_call>",), 0),
        ("x\n\nUs", ("\n\nUser:", "###"), 4),
        ("x##", ("\n\nUser:", "###"), 2),
        ("aab", ("aab", "b"), 1),  # a whole short marker at the end is held too: matchers look for matches first
        ("xab", ("ab", "abcd"), 2),  # ...but an end that is also the start of a longer marker is held
        ("", ("STOP",), 0),
        ("STO", (), 0),
        ("STO", ("",), 0),
        ("a.*", (".*+", "a"), 2),  # regex characters are literal
        ("你好。", ("。再见",), 1),
    ],
)
def test_table(buffer: str, markers: tuple[str, ...], held: int) -> None:
    assert PartialMarkers(markers).length(buffer) == held == reference(buffer, markers)


def test_random_texts_agree_with_the_definition() -> None:
    rng = random.Random(99)
    for _ in range(3000):
        markers = tuple(
            "".join(rng.choice("ab.\n") for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 4))
        )
        buffer = "".join(rng.choice("ab.\nc") for _ in range(rng.randint(0, 10)))
        assert PartialMarkers(markers).length(buffer) == reference(buffer, markers), (buffer, markers)
