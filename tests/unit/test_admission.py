"""The admission gate and the shutdown drain, on their own (no HTTP): ordering, hand-over, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from rolecall.core.errors import Overloaded
from rolecall.engines.base import EngineInfo
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.admission import ModelGate
from rolecall.service.drain import Drain
from rolecall.service.registry import ServedModel
from rolecall.service.runtime import build_admission
from rolecall.settings import Settings


def test_slots_then_queue_then_529() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=2, queue_length=1, max_wait=5)
        first, second = await gate.enter(), await gate.enter()
        waiting = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.queued) == (2, 1)
        with pytest.raises(Overloaded) as shed:
            await gate.enter()
        assert shed.value.status == 529 and shed.value.headers()["retry-after"] == "1"
        first.release()
        first.release()  # idempotent: one slot is given back once
        third = await waiting
        assert (gate.in_flight, gate.queued) == (2, 0)
        for admitted in (second, third):
            admitted.release()
        assert (gate.in_flight, gate.queued) == (0, 0)

    asyncio.run(scenario())


def test_waiters_are_served_in_arrival_order_and_newcomers_do_not_overtake() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=1, queue_length=5, max_wait=5)
        holder = await gate.enter()
        order: list[int] = []

        async def wait(n: int) -> None:
            admitted = await gate.enter()
            order.append(n)
            admitted.release()

        tasks = [asyncio.create_task(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        holder.release()
        tasks.append(asyncio.create_task(wait(3)))  # arrives after the hand-over started
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3] and gate.in_flight == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue_and_never_gets_a_slot() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=1, queue_length=2, max_wait=5)
        holder = await gate.enter()
        gone = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        gone.cancel()  # the client left while queued
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert gate.queued == 0
        holder.release()
        assert (gate.in_flight, gate.queued) == (0, 0)

    asyncio.run(scenario())


def test_waiting_too_long_is_shed() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=1, queue_length=2, max_wait=0.05)
        holder = await gate.enter()
        with pytest.raises(Overloaded):
            await gate.enter()
        assert gate.queued == 0
        holder.release()
        assert gate.in_flight == 0

    asyncio.run(scenario())


def test_slots_come_from_the_engine_unless_overridden() -> None:
    declared, undeclared = ScriptedEngine(), ScriptedEngine()
    declared.info = EngineInfo(context_window=1024, slots=3)
    models = [ServedModel("a", declared, "A", "2024-11-01T00:00:00Z"), ServedModel("b", undeclared, "B", "x")]
    admission = build_admission(models, Settings(queue_length=7))
    assert (admission.gate("a").slots, admission.gate("a").queue_length) == (3, 7)
    assert admission.gate("b").slots == 64
    assert build_admission(models, Settings(max_in_flight=2)).gate("a").slots == 2


def test_drain_ends_a_stalled_stream_with_overloaded_after_the_grace_period() -> None:
    async def stalled(drain: Drain):
        with drain.guarding():
            yield {"type": "message_start"}
            await asyncio.sleep(60)
            yield {"type": "never"}

    async def scenario() -> list:
        drain = Drain()
        seen: list = []
        drain.begin(0.05)
        with pytest.raises(Overloaded, match="shutting down"):
            async for event in stalled(drain):
                seen.append(event["type"])
        assert not asyncio.current_task().cancelling()  # the cancellation was consumed, not left pending
        with pytest.raises(Overloaded):  # after the grace period nothing new starts
            async for _ in stalled(drain):
                pass
        return seen

    assert asyncio.run(scenario()) == ["message_start"]


def test_background_work_enters_only_while_no_interactive_request_wants_the_engine() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=2, queue_length=4, max_wait=5, quiet=0.2)
        batch = await gate.enter_background()  # idle: at once
        interactive = await gate.enter()  # a batch request never holds an interactive one back
        assert (gate.in_flight, gate.background) == (2, 1)
        second = asyncio.create_task(gate.enter_background())
        await asyncio.sleep(0.01)
        assert not second.done()  # an interactive request is in flight
        batch.release()
        await asyncio.sleep(0.01)
        assert not second.done() and gate.background == 0  # still: the interactive one runs
        queued = [await gate.enter(), asyncio.create_task(gate.enter())]  # full, one more waits
        interactive.release()  # the slot goes to the waiting interactive request, not to the batch
        third = await queued[1]
        assert not second.done()
        for admitted in (queued[0], third):
            admitted.release()
        await asyncio.sleep(0.1)
        assert not second.done()  # nothing in flight, but an interactive request left just now
        background = await asyncio.wait_for(second, 1)  # quiet at last
        assert (gate.in_flight, gate.background) == (1, 1)
        background.release()
        assert (gate.in_flight, gate.background) == (0, 0)

    asyncio.run(scenario())


def test_a_background_waiter_that_gives_up_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=1, queue_length=4, max_wait=5)
        interactive = await gate.enter()
        waiting = asyncio.create_task(gate.enter_background())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        interactive.release()
        assert (gate.in_flight, gate.background, gate.queued) == (0, 0, 0)
        (await gate.enter()).release()

    asyncio.run(scenario())


def test_an_interactive_request_preempts_background_work_still_processing_its_prompt() -> None:
    async def scenario() -> None:
        gate = ModelGate(slots=4, queue_length=4, max_wait=5)
        prefilling, decoding = await gate.enter_background(), await gate.enter_background()
        decoding.prefilling = False  # its output has begun
        assert prefilling.preempted is not None and decoding.preempted is not None
        assert not prefilling.preempted.is_set()
        interactive = await gate.enter()
        assert prefilling.preempted.is_set() and not decoding.preempted.is_set()
        assert interactive.preempted is None  # interactive requests are never stopped
        for admitted in (prefilling, decoding, interactive):
            admitted.release()
        assert (gate.in_flight, gate.background) == (0, 0)

    asyncio.run(scenario())
