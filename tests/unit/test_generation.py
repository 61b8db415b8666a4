"""service/generation: one generation's lifecycle (slot, events, release, usage) and n choices of one
prompt, on the scripted engine without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rolecall.core.caller import ANONYMOUS
from rolecall.core.chunks import FinishChunk, PrefillChunk, TextChunk, UsageChunk
from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.core.errors import Overloaded, UpstreamError
from rolecall.core.events import BlockDelta, BlockStarted, BlockStopped, Finished, OutputEvent, Started
from rolecall.core.usage import Usage
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.drain import Drain
from rolecall.service.generation import start, start_choices
from rolecall.service.limits import Limiter, MemoryCounters
from rolecall.service.metrics import Metrics
from rolecall.service.prepare import PreparedCall, prepare
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import Runtime, build_admission
from rolecall.settings import Settings
from rolecall.shaping.thinking import ThinkingSigner

REQUEST = GenerationRequest(turns=(Turn("user", "say hi"),), max_tokens=16)


def runtime(engine: ScriptedEngine, tmp_path: Path, **settings: object) -> Runtime:
    config = Settings(data_dir=tmp_path, **settings)  # type: ignore[arg-type]
    registry = ModelRegistry([ServedModel("m", engine, "M", "2024-11-01T00:00:00Z")])
    admission = build_admission(registry.models, config)
    return Runtime(
        config, registry, Metrics(), ThinkingSigner(b"s" * 32), admission, Drain(), Limiter(MemoryCounters())
    )


async def prepared(rt: Runtime) -> PreparedCall:
    return await prepare(rt, "m", lambda traits, signatures: REQUEST)


def texts(events: list[OutputEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, BlockDelta))


def test_one_generation_releases_its_slot_and_records_usage(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.enqueue([TextChunk("Hi"), TextChunk(" there"), FinishChunk("stop"), UsageChunk(3, 2, 1)])
    rt = runtime(engine, tmp_path)

    async def scenario() -> list[list[OutputEvent]]:
        call = await prepared(rt)
        async with await start(rt, ANONYMOUS, call) as generation:
            assert rt.admission.counts()["m"] == (1, 0)
            batches = [events async for events in generation.events()]
        assert rt.admission.counts()["m"] == (0, 0) and engine.active == 0
        return batches

    # The script is one read of the engine's output: its events come as one list, with Started, and the end
    # (after the ledger) as another.
    assert asyncio.run(scenario()) == [
        [Started(Usage(3)), BlockStarted(0, "text"), BlockDelta(0, "text", "Hi"), BlockDelta(0, "text", " there")],
        [BlockStopped(0), Finished("end", None, Usage(3, 1, 2))],
    ]
    assert rt.metrics.cache_read_tokens.labels("m")._value.get() == 1
    assert rt.metrics.output_tokens.labels("m")._value.get() == 2


def test_choices_interleave_and_each_is_a_whole_turn(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.enqueue([TextChunk("a1"), 0.05, TextChunk("a2"), FinishChunk("stop")])
    engine.enqueue([TextChunk("b1"), TextChunk("b2"), FinishChunk("length")])
    rt = runtime(engine, tmp_path)

    async def scenario() -> list[tuple[int, OutputEvent]]:
        call = await prepared(rt)
        async with await start_choices(rt, ANONYMOUS, call, 2) as choices:
            assert rt.admission.counts()["m"] == (2, 0)
            seen = [(i, event) async for i, events in choices.events() for event in events]
        assert rt.admission.counts()["m"] == (0, 0) and engine.active == 0
        return seen

    seen = asyncio.run(scenario())
    per_choice = {i: [event for j, event in seen if j == i] for i in (0, 1)}
    assert texts(per_choice[0]) == "a1a2" and texts(per_choice[1]) == "b1b2"
    ends = [per_choice[i][-1] for i in (0, 1)]
    assert all(isinstance(per_choice[i][0], Started) for i in (0, 1))
    assert [end.reason for end in ends if isinstance(end, Finished)] == ["end", "length"]
    # Arrival order: choice 1 finished while choice 0 was paused.
    assert seen.index((1, ends[1])) < seen.index((0, ends[0]))


def test_choices_start_all_or_none(tmp_path: Path) -> None:
    rt = runtime(ScriptedEngine(), tmp_path, max_in_flight=1, queue_length=0)

    async def scenario() -> None:
        call = await prepared(rt)
        with pytest.raises(Overloaded):
            await start_choices(rt, ANONYMOUS, call, 2)
        assert rt.admission.counts()["m"] == (0, 0)

    asyncio.run(scenario())


def test_a_failing_choice_ends_them_all(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.enqueue([TextChunk("a"), 5.0, FinishChunk("stop")])
    engine.enqueue([TextChunk("b"), 0.05, UpstreamError("engine fell over")])
    rt = runtime(engine, tmp_path)

    async def scenario() -> None:
        call = await prepared(rt)
        async with await start_choices(rt, ANONYMOUS, call, 2) as choices:
            with pytest.raises(UpstreamError, match="fell over"):
                async for _ in choices.events():
                    pass
        assert rt.admission.counts()["m"] == (0, 0) and engine.active == 0

    asyncio.run(asyncio.wait_for(scenario(), timeout=4))


def test_the_cached_part_told_first_is_in_started_and_not_output(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.enqueue([PrefillChunk(2), 0.05, TextChunk("Hi"), FinishChunk("stop")])
    rt = runtime(engine, tmp_path)

    async def scenario() -> list[OutputEvent]:
        async with await start(rt, ANONYMOUS, await prepared(rt)) as generation:
            return [event async for events in generation.events() for event in events]

    events = asyncio.run(scenario())
    assert events[0] == Started(Usage(3, 2)) and texts(events) == "Hi"
    assert events[-1] == Finished("end", None, Usage(3, 2, 1))  # no final usage: the early split and our count


def test_a_failure_after_the_cached_part_is_still_an_early_failure(tmp_path: Path) -> None:
    """The early-failure window is for the first output: an engine failing right after telling its cache
    still answers with the error's HTTP status, not a stream that breaks."""
    engine = ScriptedEngine()
    engine.enqueue([PrefillChunk(2), Overloaded("busy")])
    rt = runtime(engine, tmp_path)

    async def scenario() -> None:
        with pytest.raises(Overloaded):
            await start(rt, ANONYMOUS, await prepared(rt))
        assert rt.admission.counts()["m"] == (0, 0) and engine.active == 0

    asyncio.run(scenario())
