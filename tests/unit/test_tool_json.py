"""ToolArgumentsGuard: every sent prefix parses as the SDK parses it, and the end is one complete object."""

from __future__ import annotations

import json
import random

import jiter
import pytest

from rolecall.parsing.tool_json import ToolArgumentsGuard
from tests.support.sse import is_json_prefix

# (what the engine sent, the object the client must end up with)
CASES = [
    (
        '{"a": 1, "b": "x\\ny", "c": [1, 2.5e-3, true, null, {"d": "\\u00e9"}]}',
        {"a": 1, "b": "x\ny", "c": [1, 2.5e-3, True, None, {"d": "é"}]},
    ),
    ("{}", {}),
    (' {"a" : "q\\"" , "b":false}', {"a": 'q"', "b": False}),
    ('{"é": "ü\\t", "nested": {"list": [[], {}]}}', {"é": "ü\t", "nested": {"list": [[], {}]}}),
    # cut short: closed at the last valid point
    ('{"a":1,"b', {"a": 1}),
    ('{"a":1,', {"a": 1}),
    ('{"a": "unterminated', {"a": "unterminated"}),
    ('{"a": 1.', {"a": 1.0}),
    ('{"a": -', {"a": 0}),
    ('{"a": tru', {"a": True}),
    ('{"k":[1,2,', {"k": [1, 2]}),
    ('{"x": "\\u00', {"x": ""}),
    ('{"a": {"b": [1', {"a": {"b": [1]}}),
    # invalid: everything from the first bad character is dropped
    ('{"a": 1}}garbage', {"a": 1}),
    ('{"a":1}{"b":2}', {"a": 1}),
    ('{"a" 1}', {}),
    ('{"a": 01}', {"a": 0}),
    ("not json", None),
    ("[1, 2]", None),
    # raw control characters inside strings are escaped, not fatal
    ('{"cmd": "ls\n-la\t"}', {"cmd": "ls\n-la\t"}),
]


def run(pieces: list[str]) -> tuple[list[str], str]:
    guard = ToolArgumentsGuard()
    sent = [guard.feed(piece) for piece in pieces]
    return sent, guard.close()


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_random_splits_agree_and_every_prefix_parses(text: str, expected: dict | None) -> None:
    rng = random.Random(text)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 6))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=False)]
        sent, ending = run(pieces)
        so_far = ""
        for fragment in sent:
            so_far += fragment
            assert is_json_prefix(so_far), (pieces, so_far)
            if so_far:
                jiter.from_json(so_far.encode(), partial_mode=True)  # the SDK's own parse after each delta
        whole = so_far + ending
        assert (json.loads(whole) if whole else None) == expected, (pieces, whole)


def test_one_character_at_a_time() -> None:
    text = CASES[0][0]
    sent, ending = run(list(text))
    assert json.loads("".join(sent) + ending) == CASES[0][1]


def test_a_member_is_held_until_its_value_begins() -> None:
    guard = ToolArgumentsGuard()
    assert guard.feed('{"a": 1, "long_key"') == '{"a": 1'
    assert guard.feed(': "v') == ', "long_key": "v'
