"""service/turn.TurnInProgress.on_chunks: a batch of engine chunks (one upstream read) gives the events its
chunks give one by one, and is read only up to the chunk that ends the turn early."""

from __future__ import annotations

import time

import pytest

from rolecall.core.chunks import EngineChunk, FinishChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.core.events import OutputEvent
from rolecall.core.usage import Usage
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.metrics import Metrics
from rolecall.service.prepare import PreparedCall
from rolecall.service.registry import ServedModel
from rolecall.service.turn import TurnInProgress
from rolecall.shaping.thinking import ThinkingSigner


def turn(stops: tuple[str, ...] = (), parallel: bool = True) -> TurnInProgress:
    model = ServedModel("m", ScriptedEngine(), "M", "2024-11-01T00:00:00Z", tool_parser="hermes")
    request = GenerationRequest(
        turns=(Turn("user", "hi"),), max_tokens=64, stop_sequences=stops, parallel_tool_calls=parallel
    )
    return TurnInProgress(
        PreparedCall("m", model, request, 5, time.perf_counter()), ThinkingSigner(b"s" * 32), Metrics()
    )


def one_by_one(current: TurnInProgress, chunks: list[EngineChunk]) -> list[OutputEvent]:
    """As the generation loop reads a stream chunk by chunk: it stops reading once the turn has ended."""
    events: list[OutputEvent] = []
    for chunk in chunks:
        events += current.on_chunk(chunk)
        if current.ended_early:
            break
    return events


def text(*pieces: str) -> list[EngineChunk]:
    return [TextChunk(piece) for piece in pieces]


CALL = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
SCRIPTS = [
    # (stop sequences, parallel calls, chunks)
    ((), True, [*text("<think>", "plan", "</think>", "Hello", " world"), FinishChunk("stop"), UsageChunk(5, 5)]),
    (("STOP",), True, [*text("Hello", " ST", "OP", " never", " sent"), FinishChunk("stop"), UsageChunk(5, 5)]),
    ((), False, [*text("Calls:", CALL, CALL, "after"), FinishChunk("stop"), UsageChunk(5, 4)]),
    ((), True, [ToolCallChunk(0, "a", "f", "{}"), ToolCallChunk(1, "b", "g", '{"x"'), *text(" late")]),
    ((), False, [ToolCallChunk(0, "a", "f", "{}"), ToolCallChunk(1, "b", "g", '{"x"'), *text(" late")]),
]


@pytest.mark.parametrize(("stops", "parallel", "chunks"), SCRIPTS)
def test_a_batch_gives_the_events_of_its_chunks_one_by_one(
    stops: tuple[str, ...], parallel: bool, chunks: list[EngineChunk]
) -> None:
    single = turn(stops, parallel)
    expected = one_by_one(single, chunks) + single.finish()
    for cut in range(len(chunks) + 1):  # the stream read as two batches, cut anywhere
        batched = turn(stops, parallel)
        events = batched.on_chunks(chunks[:cut])
        if not batched.ended_early:
            events += batched.on_chunks(chunks[cut:])
        assert events + batched.finish() == expected, cut
        assert (batched.finish_reason(), batched.usage()) == (single.finish_reason(), single.usage())


def test_a_stop_in_the_middle_of_a_batch_ends_the_turn_there() -> None:
    current = turn(("STOP",))
    current.on_chunks([*text("a", "STOP", "b", "c"), UsageChunk(5, 9)])
    assert current.ended_early and current.finish_reason() == "stop_sequence"
    assert current.usage() == Usage(5, 0, 2), "the usage after the stop was never read: our own count"
