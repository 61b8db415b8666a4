"""parsing/tool_json.ToolArgumentsGuard at every chunk boundary: arguments cut in two at every position and fed
one character at a time send the same text as arguments fed whole (which take the one-`json.loads` path)."""

from __future__ import annotations

import json

import pytest

from rolecall.parsing.tool_json import ToolArgumentsGuard
from tests.support.sse import is_json_prefix

CASES = [
    # (arguments as the engine sent them, what the client receives in the end; None: the same, less leading blanks)
    ('{"city": "São Paulo", "note": "a \\"quoted\\" \\\\ path \\u00e9"}', None),
    ('  {"a": [1, -2.5e+3, true, null, {}], "b": {"c": ""}}  ', None),
    ("{}", None),
    ('{"cmd": "ls\n-la\t"}', '{"cmd": "ls\\n-la\\t"}'),  # raw control characters are escaped
    ('{"a": NaN}', "{}"),  # not JSON: cut at the last valid point (a member waits for its value)...
    ('{"a": 1}}', '{"a": 1}'),
    ('{"a": "cut', '{"a": "cut"}'),  # ...and closed into an object
    ('{"a": 1, "b', '{"a": 1}'),
    ("[1]", ""),
]


def sent(pieces: list[str]) -> tuple[str, str]:
    """Everything sent, checking each step is a JSON prefix, and the closing text."""
    guard = ToolArgumentsGuard()
    so_far = ""
    for piece in pieces:
        so_far += guard.feed(piece)
        assert is_json_prefix(so_far), (pieces, so_far)
    return so_far, guard.close()


@pytest.mark.parametrize(("arguments", "received"), CASES)
def test_every_split_sends_what_the_whole_sends(arguments: str, received: str | None) -> None:
    whole = sent([arguments])
    assert whole[0] + whole[1] == (arguments.lstrip() if received is None else received)
    for i in range(len(arguments) + 1):
        assert sent([arguments[:i], arguments[i:]]) == whole, i
    assert sent(list(arguments)) == whole


def test_a_whole_object_is_sent_at_once() -> None:
    guard = ToolArgumentsGuard()
    assert guard.feed(' {"a": {"b": [1, 2]}} ') == '{"a": {"b": [1, 2]}} '
    assert guard.close() == ""
    assert guard.feed("x") == "" and guard.close() == ""


def test_after_an_invalid_start_a_whole_object_is_still_refused() -> None:
    guard = ToolArgumentsGuard()
    assert guard.feed("x") == ""
    assert guard.feed('{"a": 1}') == "" and guard.close() == ""


def test_the_end_parses_as_the_object() -> None:
    text, ending = sent(['{"k": "v\\', 'n", "n": [1', ", 2"])
    assert json.loads(text + ending) == {"k": "v\n", "n": [1, 2]}
