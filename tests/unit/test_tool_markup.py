"""parsing/tool_calls.ToolMarkupParser: hermes, MiniMax-M2 and forced-JSON tool calls in text."""

from __future__ import annotations

import itertools
import json

import pytest

from rolecall.parsing.tool_calls import ParsedCall, ToolMarkupParser

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
        "tags": {"type": "array"},
        "zip": {"type": "string"},
    },
}
SCHEMAS = {"get_weather": WEATHER}


def parse(syntax: str, text: str, cuts: list[int] = ()) -> list:  # type: ignore[assignment]
    parser = ToolMarkupParser(syntax, SCHEMAS)
    pieces: list = []
    edges = [0, *cuts, len(text)]
    for start, end in itertools.pairwise(edges):
        pieces += parser.feed(text[start:end])
    pieces += parser.flush()
    merged: list = []
    for piece in pieces:  # adjacent text pieces are one text, however they were cut
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def call(name: str, **arguments: object) -> ParsedCall:
    return ParsedCall(name, json.dumps(arguments, ensure_ascii=False))


HERMES = [
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        [call("get_weather", city="Paris")],
    ),
    (
        'Let me check.\n\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}</tool_call>',
        ["Let me check.", call("get_weather", city="Oslo", days=2), call("get_weather", city="Rome")],
    ),
    ("No tools needed: 3 < 4.", ["No tools needed: 3 < 4."]),
    ("a <tool_c", ["a <tool_c"]),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}', [call("get_weather", city="Paris")]),
    ("<tool_call>not json</tool_call> after", ["<tool_call>not json</tool_call> after"]),
    ('<tool_call>{"name": "f", "parameters": {"b": 1, "a": 2}}</tool_call>', [call("f", b=1, a=2)]),
    ('<tool_call>{"name": "f", "argu', ['<tool_call>{"name": "f", "argu']),
]

MINIMAX = [
    (
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">São Paulo</parameter>\n'
        '<parameter name="days">3</parameter>\n<parameter name="metric">true</parameter>\n'
        '<parameter name="tags">["a", "b"]</parameter>\n<parameter name="zip">01310</parameter>\n'
        "</invoke>\n</minimax:tool_call>",
        [call("get_weather", city="São Paulo", days=3, metric=True, tags=["a", "b"], zip="01310")],
    ),
    (
        'Checking.<minimax:tool_call><invoke name="get_weather"><parameter name="city">Oslo</parameter></invoke>'
        '<invoke name="other"><parameter name="n">4</parameter><parameter name="s">x y</parameter></invoke>'
        "</minimax:tool_call>",
        ["Checking.", call("get_weather", city="Oslo"), call("other", n=4, s="x y")],
    ),
    (
        '<minimax:tool_call><invoke name="get_weather"><parameter name="days">soon</parameter></invoke>'
        "</minimax:tool_call>",
        [call("get_weather", days="soon")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), HERMES)
def test_hermes(text: str, expected: list) -> None:
    assert parse("hermes", text) == expected


@pytest.mark.parametrize(("text", "expected"), MINIMAX)
def test_minimax_m2(text: str, expected: list) -> None:
    assert parse("minimax_m2", text) == expected


@pytest.mark.parametrize(
    ("syntax", "text", "expected"), [("hermes", t, e) for t, e in HERMES] + [("minimax_m2", t, e) for t, e in MINIMAX]
)
def test_any_cut_gives_the_same_calls(syntax: str, text: str, expected: list) -> None:
    for i in range(1, len(text)):
        assert parse(syntax, text, [i]) == expected, i
    for i in range(1, len(text), 7):
        for j in range(i + 1, len(text), 5):
            assert parse(syntax, text, [i, j]) == expected, (i, j)


def test_text_streams_while_no_tag_can_start() -> None:
    parser = ToolMarkupParser("hermes", SCHEMAS)
    assert parser.feed("Hello wor") == ["Hello wor"]
    assert parser.feed("ld <tool") == ["ld"]
    assert parser.feed("box>") == [" <toolbox>"]


def test_unknown_syntax_is_refused() -> None:
    with pytest.raises(ValueError):
        ToolMarkupParser("json", SCHEMAS)
