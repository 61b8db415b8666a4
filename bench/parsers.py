"""CPU per streamed token through the output parsers: engine chunks -> neutral output events.

    .venv/bin/python bench/parsers.py [--answers 200] [--rounds 5]

What one generated turn does with its engine's chunks (service/turn.TurnInProgress): <think> tags, tool-call
markup, stop sequences, the block assembler with its tool-argument guard, built per answer from the model's
settings as a request would build it. No server, no engine, no sockets: the figures are the parsers' own share
of the gateway's CPU per token (the whole gateway's is measured by the zero-cost-upstream harness).

Two arrival patterns, as an upstream delivers them: `paced`, one token per read (an engine's pace, one
`on_chunk` per token), and `burst`, the whole answer in one read (one batch; where the turn takes batches,
`on_chunks` once). Each figure is CPU time (process_time) over `--answers` answers of about 256 tokens,
the best of `--rounds` rounds, in microseconds per token, chain construction and the final flush included.

Run it against another checkout (for a before/after) with that checkout first on the path:

    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/parsers.py
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import rolecall
from rolecall.core.chunks import EngineChunk, FinishChunk, TextChunk, UsageChunk
from rolecall.core.conversation import GenerationRequest, ToolSpec, Turn
from rolecall.core.events import BlockStarted
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.metrics import Metrics
from rolecall.service.prepare import PreparedCall
from rolecall.service.registry import ServedModel
from rolecall.service.turn import TurnInProgress
from rolecall.shaping.thinking import ThinkingSigner

# Roughly how a BPE tokenizer cuts English and markup: a word with its leading space, a run of punctuation.
_TOKEN = re.compile(r" ?[A-Za-z0-9]+| ?[^A-Za-z0-9\s]+|\s+")
_PROSE = (
    "The quick brown fox jumps over the lazy dog, and then it runs back home again. "
    "Streaming answers arrive one token at a time; every token is parsed before it is sent on.\n\n"
)
WEATHER = ToolSpec("get_weather", "Weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}})


def tokens(text: str, count: int) -> list[str]:
    """`count` token-sized pieces of `text` repeated as often as needed."""
    pieces = _TOKEN.findall(text)
    return [pieces[i % len(pieces)] for i in range(count)]


@dataclass(frozen=True)
class Scenario:
    name: str
    pieces: list[str]
    model: dict[str, object]  # ServedModel settings: reasoning, tool_parser
    request: dict[str, object]  # GenerationRequest fields: stop_sequences, tools
    blocks: tuple[str, ...]  # the content blocks the answer must come out as (`check`)


def scenarios() -> list[Scenario]:
    call = json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "note": "a longer argument " * 6}})
    markup = _TOKEN.findall(f"<tool_call>\n{call}\n</tool_call>")
    stops = ("\n\nUser:", "###", "<|im_end|>")
    return [
        Scenario("plain text", tokens(_PROSE, 256), {"reasoning": "field"}, {}, ("text",)),
        Scenario("plain text, reasoning auto", tokens(_PROSE, 256), {"reasoning": "auto"}, {}, ("text",)),
        Scenario("plain text, 3 stop sequences", tokens(_PROSE, 256), {}, {"stop_sequences": stops}, ("text",)),
        Scenario(
            "<think> 128 + answer 128",
            ["<", "think", ">", *tokens(_PROSE, 125), "</", "think", ">", *tokens(_PROSE, 128)],
            {},
            {},
            ("thinking", "text"),
        ),
        Scenario(
            "text 200 + hermes tool call",
            [*tokens(_PROSE, 256 - len(markup)), *markup],
            {"tool_parser": "hermes"},
            {"tools": (WEATHER,)},
            ("text", "tool_call"),
        ),
        Scenario(
            "all: think, stops, tool markup",
            ["<", "think", ">", *tokens(_PROSE, 100), "</", "think", ">", *tokens(_PROSE, 156 - len(markup)), *markup],
            {"tool_parser": "hermes"},
            {"tools": (WEATHER,), "stop_sequences": stops},
            ("thinking", "text", "tool_call"),
        ),
    ]


def prepared(scenario: Scenario) -> PreparedCall:
    model = ServedModel("m", ScriptedEngine(), "M", "2024-11-01T00:00:00Z", **scenario.model)  # type: ignore[arg-type]
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=1024, **scenario.request)  # type: ignore[arg-type]
    return PreparedCall("m", model, request, 10, time.perf_counter())


def feeder(burst: bool) -> Callable[[TurnInProgress, list[EngineChunk]], int]:
    """How the chunks reach the turn: one call per token (paced) or the whole answer as one batch (burst)."""

    def paced(turn: TurnInProgress, chunks: list[EngineChunk]) -> int:
        events = 0
        for chunk in chunks:
            events += len(turn.on_chunk(chunk))
        return events

    def batch(turn: TurnInProgress, chunks: list[EngineChunk]) -> int:
        on_chunks = getattr(turn, "on_chunks", None)
        return len(on_chunks(chunks)) if on_chunks is not None else paced(turn, chunks)

    return batch if burst else paced


def answer_chunks(scenario: Scenario) -> list[EngineChunk]:
    chunks: list[EngineChunk] = [TextChunk(piece) for piece in scenario.pieces]
    return [*chunks, FinishChunk("stop"), UsageChunk(10, len(scenario.pieces))]


def check(scenario: Scenario) -> None:
    """Fail unless the answer comes out as the scenario's blocks, so a figure measures the parsing it names."""
    turn = TurnInProgress(prepared(scenario), ThinkingSigner(b"s" * 32), Metrics())
    events = [event for chunk in answer_chunks(scenario) for event in turn.on_chunk(chunk)] + turn.finish()
    blocks = tuple(event.kind for event in events if isinstance(event, BlockStarted))
    if blocks != scenario.blocks:
        raise AssertionError(f"{scenario.name}: blocks {blocks}, expected {scenario.blocks}")


def measure(scenario: Scenario, burst: bool, answers: int, rounds: int) -> float:
    """Best-of-rounds CPU microseconds per token for `answers` answers of this scenario."""
    call, signer, metrics = prepared(scenario), ThinkingSigner(b"s" * 32), Metrics()
    chunks = answer_chunks(scenario)
    feed = feeder(burst)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(answers):
            turn = TurnInProgress(call, signer, metrics)
            feed(turn, chunks)
            turn.finish()
        best = min(best, time.process_time() - start)
    return best / (answers * len(scenario.pieces)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"rolecall from {rolecall.__file__}")
    print("| scenario | tokens | paced µs/token | burst µs/token |")
    print("|---|---|---|---|")
    for scenario in scenarios():
        check(scenario)
        paced = measure(scenario, False, args.answers, args.rounds)
        burst = measure(scenario, True, args.answers, args.rounds)
        print(f"| {scenario.name} | {len(scenario.pieces)} | {paced:.2f} | {burst:.2f} |")


if __name__ == "__main__":
    main()
