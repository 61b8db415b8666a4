"""parsing/stops.StopMatcher: exact matching across chunk boundaries, never emitting a partial stop."""

from __future__ import annotations

import random

import pytest

from rolecall.parsing.stops import StopMatcher


def run(stops: tuple[str, ...], chunks: list[str]) -> tuple[list[str], str, str | None]:
    """Per-chunk outputs, the flushed tail (only when no match) and the matched stop."""
    matcher = StopMatcher(stops)
    outputs = [matcher.feed(chunk) for chunk in chunks]
    tail = matcher.flush() if matcher.matched is None else ""
    return outputs, tail, matcher.matched


def reference(stops: tuple[str, ...], text: str) -> tuple[str, str | None]:
    """The visible text and stop, from the whole text at once: earliest completion wins, ties go to the longer."""
    best: tuple[int, int, str] | None = None
    for stop in stops:
        start = text.find(stop)
        if start >= 0:
            key = (start + len(stop), -len(stop), stop)
            if best is None or key < best:
                best = key
    if best is None:
        return text, None
    end, _, stop = best
    return text[: end - len(stop)], stop


@pytest.mark.parametrize(
    ("stops", "chunks", "outputs", "tail", "matched"),
    [
        # No stops: passthrough, nothing held.
        ((), ["Hello", " STOP", ""], ["Hello", " STOP", ""], "", None),
        # A stop inside one chunk: text before it, nothing after.
        (("STOP",), ["abcSTOPdef"], ["abc"], "", "STOP"),
        # Straddling two chunks: the partial "ST" is held, never emitted.
        (("STOP",), ["Hello ST", "OP and more"], ["Hello ", ""], "", "STOP"),
        # Straddling three chunks.
        (("STOP",), ["xS", "T", "OPy"], ["x", "", ""], "", "STOP"),
        # A held prefix that fails to match is released.
        (("STOP",), ["abcST", "x"], ["abc", "STx"], "", None),
        (("STOP",), ["abcSTO", "STOP"], ["abc", "STO"], "", "STOP"),
        # Held at the end of the stream: flush returns it.
        (("STOP",), ["abS"], ["ab"], "S", None),
        (("STOP",), ["abSTO"], ["ab"], "STO", None),
        # Text after the match is dropped, also in later chunks.
        (("STOP",), ["aSTOPb", "more"], ["a", ""], "", "STOP"),
        # Earliest-completing match wins, even if a longer one started earlier.
        (("world", "lo w"), ["hello world"], ["hel"], "", "lo w"),
        (("abcdef", "cd"), ["abcdefg"], ["ab"], "", "cd"),
        (("abcd", "bc"), ["ab", "cd"], ["", "a"], "", "bc"),
        # Ties (same end) go to the longer string.
        (("bc", "abc"), ["xabcd"], ["x"], "", "abc"),
        (("c", "abc", "bc"), ["xab", "c"], ["x", ""], "", "abc"),
        # Overlapping prefixes: "aa" + "ab" partials.
        (("aab",), ["aa", "a", "b"], ["", "a", ""], "", "aab"),
        # Stop at the very start.
        (("\n\n",), ["\n", "\nrest"], ["", ""], "", "\n\n"),
        # Multi-byte characters.
        (("。",), ["你好", "。再见"], ["你好", ""], "", "。"),
        # Duplicated stops behave as one.
        (("END", "END"), ["xEN", "Dy"], ["x", ""], "", "END"),
    ],
)
def test_table(stops, chunks, outputs, tail, matched) -> None:
    assert run(stops, chunks) == (outputs, tail, matched)


@pytest.mark.parametrize("text", ["abcSTOPdef", "STOP", "xxSTOP", "STOPxx", "SSTOP", "STSTOP", "STO", "no stop here"])
def test_split_at_every_position(text: str) -> None:
    expected = reference(("STOP",), text)
    for i in range(len(text) + 1):
        outputs, tail, matched = run(("STOP",), [text[:i], text[i:]])
        assert ("".join(outputs) + tail, matched) == expected, f"split at {i}"


@pytest.mark.parametrize("text", ["abcSTOPdef", "aSTOSTOPb", "END-STOP"])
def test_one_character_at_a_time(text: str) -> None:
    outputs, tail, matched = run(("STOP", "END-"), list(text))
    assert ("".join(outputs) + tail, matched) == reference(("STOP", "END-"), text)


def test_matches_the_whole_text_reference_on_random_splits() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        stops = tuple("".join(rng.choice("ab") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3)))
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 4))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=False)]
        expected_text, expected_stop = reference(stops, text)
        matcher = StopMatcher(stops)
        emitted = ""
        for chunk in chunks:
            emitted += matcher.feed(chunk)
            # Never emits anything that is not part of the final visible text.
            assert expected_text.startswith(emitted), (stops, chunks)
        if matcher.matched is None:
            emitted += matcher.flush()
        assert (emitted, matcher.matched) == (expected_text, expected_stop), (stops, chunks)


def test_flush_after_flush_is_empty() -> None:
    matcher = StopMatcher(("STOP",))
    assert matcher.feed("xST") == "x"
    assert matcher.flush() == "ST"
    assert matcher.flush() == ""
