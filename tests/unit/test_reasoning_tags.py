"""parsing/reasoning.ThinkTagSplitter: inline <think> blocks, at every chunk boundary."""

from __future__ import annotations

import itertools

import pytest

from rolecall.parsing.reasoning import ThinkTagSplitter


def split(text: str, cuts: list[int], opened_in_prompt: bool = False) -> tuple[str, str]:
    """Feed `text` cut at `cuts`; check reasoning never follows answer; return (reasoning, answer)."""
    splitter = ThinkTagSplitter(opened_in_prompt)
    reasoning, answer = "", ""
    edges = [0, *cuts, len(text)]
    for start, end in itertools.pairwise(edges):
        thought, said = splitter.feed(text[start:end])
        assert not (thought and answer), "reasoning arrived after the answer started"
        reasoning, answer = reasoning + thought, answer + said
    thought, said = splitter.flush()
    assert not (thought and answer)
    return reasoning + thought, answer + said


CASES = [
    # (text, opened_in_prompt, reasoning, answer)
    ("<think>Let me see.</think>\n\nParis.", False, "Let me see.", "\n\nParis."),
    ("\n<think>a<b</think>c", False, "a<b", "c"),
    ("Paris.", False, "", "Paris."),
    ("I <think> inline is text", False, "", "I <think> inline is text"),
    ("<think>never closed", False, "never closed", ""),
    ("<thi", False, "", "<thi"),
    ("", False, "", ""),
    ("Let me see.</think>Paris.", True, "Let me see.", "Paris."),
    ("<think>Let me see.</think>Paris.", True, "Let me see.", "Paris."),
    ("still thinking", True, "still thinking", ""),
    ("<think></think>Paris.", False, "", "Paris."),
    ("<think>x</think>a</think>b", False, "x", "a</think>b"),
]


@pytest.mark.parametrize(("text", "opened", "reasoning", "answer"), CASES)
def test_unsplit(text: str, opened: bool, reasoning: str, answer: str) -> None:
    assert split(text, [], opened) == (reasoning, answer)


@pytest.mark.parametrize(("text", "opened", "reasoning", "answer"), CASES)
def test_every_single_and_double_cut_gives_the_same_result(
    text: str, opened: bool, reasoning: str, answer: str
) -> None:
    for i in range(1, len(text)):
        assert split(text, [i], opened) == (reasoning, answer), i
        for j in range(i + 1, len(text)):
            assert split(text, [i, j], opened) == (reasoning, answer), (i, j)


def test_reasoning_streams_before_the_end_tag() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("<think>abc") == ("abc", "")
    assert splitter.feed("de</th") == ("de", "")
    assert splitter.feed("ink>ok") == ("", "ok")
