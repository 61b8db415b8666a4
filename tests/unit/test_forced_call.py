"""parsing/forced_call.ForcedCallStream: a schema-constrained `{"name", "arguments"}` answer, streamed as a call."""

from __future__ import annotations

import itertools
import json

import pytest

from rolecall.parsing.forced_call import CallFragment, ForcedCallStream
from rolecall.parsing.tool_calls import ParsedCall


def run(text: str, cuts: list[int]) -> tuple[list, int]:
    """Feed `text` cut at `cuts`; return the merged result and how many fragments were emitted before the end."""
    stream = ForcedCallStream()
    pieces: list = []
    edges = [0, *cuts, len(text)]
    for start, end in itertools.pairwise(edges):
        pieces += stream.feed(text[start:end])
    early = len(pieces)
    pieces += stream.flush()
    return pieces, early


def as_call(pieces: list) -> tuple[str, object]:
    """Fragments folded into (name, arguments object), checking only the first names the tool."""
    assert isinstance(pieces[0], CallFragment) and pieces[0].name is not None
    assert all(isinstance(p, CallFragment) and p.name is None for p in pieces[1:])
    return pieces[0].name, json.loads("".join(p.arguments for p in pieces))


PRETTY = '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris",\n    "opts": {"unit": "c"}\n  }\n}'


def test_streams_the_arguments_before_the_end() -> None:
    pieces, early = run(PRETTY, [10, 30, 50, 70])
    assert as_call(pieces) == ("get_weather", {"city": "Paris", "opts": {"unit": "c"}})
    assert early >= 3, "the name and argument fragments arrive while the answer is generated"


@pytest.mark.parametrize("text", [PRETTY, '{"name":"f","arguments":{}}', '{"name": "a\\"b", "arguments": {"x": "}}"}}'])
def test_every_cut_gives_the_same_call(text: str) -> None:
    expected = as_call(run(text, [])[0])
    for i in range(1, len(text)):
        assert as_call(run(text, [i])[0]) == expected, i


def test_arguments_first_is_parsed_at_the_end() -> None:
    pieces, early = run('{"arguments": {"x": 1}, "name": "f"}', [5])
    assert early == 0 and pieces == [ParsedCall("f", '{"x": 1}')]


def test_an_answer_that_is_not_a_call_stays_text() -> None:
    assert run('{"name": "f", "argu', [3])[0] == ['{"name": "f", "argu']
    assert run("", [])[0] == []


def test_arguments_cut_short_stream_what_there_is() -> None:
    pieces, _ = run('{"name": "f", "arguments": {"city": "Pa', [])
    assert pieces == [CallFragment("f", ""), CallFragment(None, '{"city": "Pa')]
