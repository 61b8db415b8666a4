"""The engine-output stages (parsing/*: ThinkTags, DropReasoning, ToolMarkup, ForcedCall, StopSequences) and
their chain (service/engine_output), at every chunk boundary: each input is fed whole, cut in two at every
position of every text chunk, and one character at a time; the output, adjacent pieces merged, is the same."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from rolecall.core.chunks import (
    EngineChunk,
    FinishChunk,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from rolecall.core.conversation import ToolSpec
from rolecall.parsing.chain import ChunkParser, feed_all
from rolecall.parsing.forced_call import ForcedCall
from rolecall.parsing.reasoning import DropReasoning, ThinkTags
from rolecall.parsing.stops import StopSequences
from rolecall.parsing.tool_calls import ToolMarkup
from rolecall.service.engine_output import engine_output

Stage = ChunkParser[EngineChunk, EngineChunk]
T, R = TextChunk, ReasoningChunk
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
SCHEMAS = {"get_weather": WEATHER}
ARGS = '{"city": "São Paulo", "note": "a \\"quoted\\" }"}'


def call(index: int, name: str, arguments: str) -> ToolCallChunk:
    return ToolCallChunk(index, f"parsed-{index}", name, arguments)


def merged(chunks: list[EngineChunk]) -> list[EngineChunk]:
    """Adjacent text, adjacent reasoning and the fragments of one call as one chunk each: how they were cut
    is not part of what they say."""
    out: list[EngineChunk] = []
    for chunk in chunks:
        last = out[-1] if out else None
        if isinstance(chunk, TextChunk) and isinstance(last, TextChunk):
            out[-1] = TextChunk(last.text + chunk.text)
        elif isinstance(chunk, ReasoningChunk) and isinstance(last, ReasoningChunk):
            out[-1] = ReasoningChunk(last.text + chunk.text)
        elif isinstance(chunk, ToolCallChunk) and isinstance(last, ToolCallChunk) and chunk.id is None:
            assert chunk.index == last.index and chunk.name is None, "a fragment continues the call before it"
            out[-1] = ToolCallChunk(last.index, last.id, last.name, last.arguments + chunk.arguments)
        else:
            out.append(chunk)
    return out


def every_split(chunks: list[EngineChunk]) -> Iterator[list[EngineChunk]]:
    """The input whole, each text chunk cut in two at every position, and every text one character a chunk."""
    yield chunks
    for k, chunk in enumerate(chunks):
        if isinstance(chunk, TextChunk):
            for i in range(len(chunk.text) + 1):
                yield [*chunks[:k], TextChunk(chunk.text[:i]), TextChunk(chunk.text[i:]), *chunks[k + 1 :]]
    yield [
        piece for chunk in chunks for piece in (map(TextChunk, chunk.text) if isinstance(chunk, TextChunk) else [chunk])
    ]


def run(stage: Stage, chunks: list[EngineChunk]) -> list[EngineChunk]:
    return merged(feed_all(stage, chunks) + stage.flush())


def check_every_split(make: Callable[[], Stage], chunks: list[EngineChunk], expected: list[EngineChunk]) -> None:
    for pieces in every_split(chunks):
        assert run(make(), pieces) == expected, [p.text if isinstance(p, TextChunk) else p for p in pieces]


THINK = [
    # (opened in the prompt, input, output)
    (False, [T("<think>Let me see.</think>\n\nParis.")], [R("Let me see."), T("\n\nParis.")]),
    (False, [T("\n<think>a<b</think>c")], [R("a<b"), T("c")]),
    (False, [T("Paris.")], [T("Paris.")]),
    (False, [T("I <think> inline is text")], [T("I <think> inline is text")]),
    (False, [T("<think>never closed")], [R("never closed")]),
    (False, [T("<thi")], [T("<thi")]),
    (False, [T("<think>x</think>a</think>b")], [R("x"), T("a</think>b")]),
    (True, [T("Let me see.</think>Paris.")], [R("Let me see."), T("Paris.")]),
    (True, [T("still thinking")], [R("still thinking")]),
    # Reasoning the engine sent in its own field, and the end of the stream, pass in order.
    (False, [R("field"), T("Answer.")], [R("field"), T("Answer.")]),
    (
        False,
        [T("<think>a</think>b"), FinishChunk("stop"), UsageChunk(1, 2)],
        [R("a"), T("b"), FinishChunk("stop"), UsageChunk(1, 2)],
    ),
]


@pytest.mark.parametrize(("opened", "chunks", "expected"), THINK)
def test_think_tags(opened: bool, chunks: list[EngineChunk], expected: list[EngineChunk]) -> None:
    check_every_split(lambda: ThinkTags(opened_in_prompt=opened), chunks, expected)


def test_drop_reasoning_drops_only_reasoning() -> None:
    chunks = [R("thought"), T("<think>kept as text</think>"), FinishChunk("stop")]
    check_every_split(DropReasoning, chunks, [T("<think>kept as text</think>"), FinishChunk("stop")])


HERMES_TWO = (
    f'Let me check.\n\n<tool_call>\n{{"name": "get_weather", "arguments": {ARGS}}}\n</tool_call>\n'
    '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\", \\"days\\": 2}"}</tool_call>\n\n'
)
MINIMAX_ONE = (
    'Checking.<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Oslo</parameter>\n'
    '<parameter name="days">3</parameter>\n</invoke>\n</minimax:tool_call>'
)
MARKUP = [
    # (syntax, parallel calls, input, output)
    (
        "hermes",
        True,
        [T(HERMES_TWO)],
        [
            T("Let me check."),
            call(0, "get_weather", json.dumps(json.loads(ARGS), ensure_ascii=False)),
            call(1, "get_weather", '{"city": "Rome", "days": 2}'),
        ],
    ),
    (
        "hermes",
        False,
        [T(HERMES_TWO)],
        [T("Let me check."), call(0, "get_weather", json.dumps(json.loads(ARGS), ensure_ascii=False))],
    ),
    ("hermes", True, [T("No tools: 3 < 4 <tool_c")], [T("No tools: 3 < 4 <tool_c")]),
    ("hermes", True, [T("<tool_call>not json</tool_call> after")], [T("<tool_call>not json</tool_call> after")]),
    ("hermes", True, [T('<tool_call>{"name": "f", "argu')], [T('<tool_call>{"name": "f", "argu')]),
    ("minimax_m2", True, [T(MINIMAX_ONE)], [T("Checking."), call(0, "get_weather", '{"city": "Oslo", "days": 3}')]),
    # Other chunks pass in order, between the text around them.
    ("hermes", True, [R("plan"), T("a "), FinishChunk("stop")], [R("plan"), T("a"), FinishChunk("stop"), T(" ")]),
]


@pytest.mark.parametrize(("syntax", "parallel", "chunks", "expected"), MARKUP)
def test_tool_markup(syntax: str, parallel: bool, chunks: list[EngineChunk], expected: list[EngineChunk]) -> None:
    check_every_split(lambda: ToolMarkup(syntax, SCHEMAS, parallel), chunks, expected)


PRETTY = '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris",\n    "opts": {"unit": "c"}\n  }\n}'
FORCED = [
    (
        [T(PRETTY)],
        [ToolCallChunk(0, "forced", "get_weather", '{\n    "city": "Paris",\n    "opts": {"unit": "c"}\n  }')],
    ),
    ([T('{"name":"f","arguments":{}}')], [ToolCallChunk(0, "forced", "f", "{}")]),
    ([T('{"name": "a\\"b", "arguments": {"x": "}}"}} ')], [ToolCallChunk(0, "forced", 'a"b', '{"x": "}}"}')]),
    ([T('{"arguments": {"x": 1}, "name": "f"}')], [call(0, "f", '{"x": 1}')]),
    ([T('{"name": "f", "argu')], [T('{"name": "f", "argu')]),
    ([T('{"name": "f", "arguments": {"city": "Pa')], [ToolCallChunk(0, "forced", "f", '{"city": "Pa')]),
]


@pytest.mark.parametrize(("chunks", "expected"), FORCED)
def test_forced_call(chunks: list[EngineChunk], expected: list[EngineChunk]) -> None:
    check_every_split(ForcedCall, chunks, expected)


STOPS = [
    # (stop sequences, input, output, the stop that matched)
    (("STOP", "END-"), [T("abcSTOPdef")], [T("abc")], "STOP"),
    (("STOP", "END-"), [T("no stop here")], [T("no stop here")], None),
    (("STOP", "END-"), [T("abSTO")], [T("abSTO")], None),
    (("STOP", "END-"), [T("aEND-STOP")], [T("a")], "END-"),
    (("world", "lo w"), [T("hello world")], [T("hel")], "lo w"),
    (("bc", "abc"), [T("xabcd")], [T("x")], "abc"),
    (("。",), [T("你好。再见")], [T("你好")], "。"),
    # A stop is matched within one run of text: another block between its halves ends the run.
    (("STOP",), [T("xST"), call(0, "f", "{}"), T("OP")], [T("xST"), call(0, "f", "{}"), T("OP")], None),
    (("STOP",), [T("xST"), R("r"), T("OPy")], [T("xST"), R("r"), T("OPy")], None),
    # After the match, no content goes out; the end of the stream still does.
    (
        ("STOP",),
        [T("aSTOPb"), call(0, "f", "{}"), R("late"), FinishChunk("stop"), UsageChunk(3, 4)],
        [T("a"), FinishChunk("stop"), UsageChunk(3, 4)],
        "STOP",
    ),
]


@pytest.mark.parametrize(("stops", "chunks", "expected", "matched"), STOPS)
def test_stop_sequences(
    stops: tuple[str, ...], chunks: list[EngineChunk], expected: list[EngineChunk], matched: str | None
) -> None:
    for pieces in every_split(chunks):
        stage = StopSequences(stops)
        assert (run(stage, pieces), stage.matched) == (expected, matched), pieces


TOOLS = (ToolSpec("get_weather", "Weather.", WEATHER),)
WHOLE = (
    "<think>Plan: call the tool.</think>\n\nLet me check. <tool_call>\n"
    f'{{"name": "get_weather", "arguments": {ARGS}}}\n</tool_call> Done, STOP and more <tool_call>'
)
CHAINS = [
    # (reasoning, tool syntax, stop sequences, input, output)
    (
        "auto",
        "hermes",
        ("STOP",),
        [T(WHOLE), FinishChunk("stop")],
        [
            R("Plan: call the tool."),
            T("\n\nLet me check."),
            call(0, "get_weather", json.dumps(json.loads(ARGS), ensure_ascii=False)),
            T("Done, "),
            FinishChunk("stop"),
        ],
    ),
    ("field", None, (), [R("r"), T("plain"), T("")], [R("r"), T("plain")]),
    ("none", None, ("ST",), [R("r"), T("a"), T("bSTc")], [T("ab")]),
    (
        "tags",
        "json",
        (),
        [T('plan</think>{"name": "f", "arguments": {"a": [1, 2]}}')],
        [R("plan"), ToolCallChunk(0, "forced", "f", '{"a": [1, 2]}')],
    ),
]


@pytest.mark.parametrize(("reasoning", "syntax", "stops", "chunks", "expected"), CHAINS)
def test_the_chain_of_a_request(
    reasoning: str, syntax: str | None, stops: tuple[str, ...], chunks: list[EngineChunk], expected: list[EngineChunk]
) -> None:
    def make() -> Stage:
        return engine_output(reasoning, syntax, TOOLS, True, StopSequences(stops))

    for split in every_split(chunks):
        out = [p for p in run(make(), split) if not (isinstance(p, TextChunk) and not p.text)]
        assert out == expected, split


def test_text_streams_through_the_chain_without_waiting_for_the_end() -> None:
    """Text that cannot start a tag or a stop goes out at once, chunk for chunk (the same chunk, not a copy)."""
    chain = engine_output("auto", "hermes", TOOLS, True, StopSequences(("STOP",)))
    assert chain.feed(T("Hel")) == [T("Hel")]
    word = T("lo there")
    assert chain.feed(word)[0] is word
    assert chain.feed(T(" and <tool")) == [T(" and")]
    assert chain.feed(T("box> ST")) == [T(" <toolbox> ")]  # "ST" may begin a stop
    assert chain.flush() == [T("ST")]
