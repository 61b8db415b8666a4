"""Background work (a message batch's requests) across `--workers`: a real coordinator and two real worker links.
A background request starts only after a quiet spell without interactive requests on ANY worker, an interactive
request entering on the other worker preempts one still in its prompt, and every slot comes back whole."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from rolecall.service.workers.coordinator import Coordinator
from rolecall.service.workers.link import CoordinatorLink, SharedAdmission, SharedGate
from tests.support.worker_channel import channel, run, settle

QUIET = 0.5  # as in production: the gaps below are a tenth of it, so a loaded machine does not matter


async def whole(coordinator: Coordinator, gates: list[SharedGate]) -> None:
    """Nothing held, leased or waiting anywhere, and the model calm again (workers may keep spares)."""
    await settle(lambda: coordinator.counts()["m"] == (0, 0))
    await settle(lambda: not any(gate.contended for gate in gates))
    assert [(gate.held, gate.leased, gate.waiting, len(gate.background)) for gate in gates] == [(0, 0, 0, 0)] * 2


def test_background_work_waits_for_a_quiet_spell_on_every_worker() -> None:
    async def scenario() -> None:
        async with channel(slots=4, quiet=QUIET) as (coordinator, _, admission):
            batch, interactive = admission[0].gate("m"), admission[1].gate("m")
            held = await interactive.enter()
            waiting = asyncio.create_task(batch.enter_background())
            await settle(lambda: interactive.contended)  # from now on the coordinator sees its every request
            for _ in range(6):  # requests on the other worker, each well within the quiet period of the last
                held.release()
                await asyncio.sleep(QUIET / 10)
                assert not waiting.done(), "a batch request started between interactive requests"
                held = await interactive.enter()
                await asyncio.sleep(QUIET / 10)
            held.release()
            ended = time.monotonic()
            admitted = await asyncio.wait_for(waiting, 5)
            assert time.monotonic() - ended >= QUIET, "it started before a quiet spell"
            assert admission[0].counts()["m"] == (1, 0) and coordinator.counts()["m"] == (1, 0)
            assert interactive.contended, "a background request runs: interactive ones go through the coordinator"
            admitted.release()
            await whole(coordinator, [batch, interactive])

    run(scenario)


def test_an_interactive_request_on_the_other_worker_preempts_background_work_in_its_prompt() -> None:
    async def scenario() -> None:
        async with channel(slots=4, quiet=QUIET) as (coordinator, links, admission):
            batch, interactive = admission[0].gate("m"), admission[1].gate("m")
            prefilling = await asyncio.wait_for(batch.enter_background(), 5)  # idle: at once
            decoding = await asyncio.wait_for(batch.enter_background(), 5)
            decoding.prefilling = False  # its output has begun: it runs on
            assert prefilling.preempted is not None and decoding.preempted is not None
            held = await interactive.enter()
            assert held.preempted is None  # interactive requests are never stopped
            await asyncio.wait_for(prefilling.preempted.wait(), 5)
            await links[0].ask({"op": "home", "model": "m", "key": "-"})  # every word sent before it has arrived
            assert not decoding.preempted.is_set()
            assert coordinator.counts()["m"] == (3, 0)
            for slot in (prefilling, decoding, held):
                slot.release()
            await whole(coordinator, [batch, interactive])

    run(scenario)


def test_a_background_waiter_that_gives_up_and_a_worker_that_dies_holding_one_leave_nothing_behind() -> None:
    async def scenario() -> None:
        async with channel(slots=2, quiet=QUIET) as (coordinator, _, admission):
            batch, interactive = admission[0].gate("m"), admission[1].gate("m")
            held = await interactive.enter()
            giving_up = asyncio.create_task(batch.enter_background())
            await settle(lambda: interactive.contended)
            giving_up.cancel()
            with pytest.raises(asyncio.CancelledError):
                await giving_up
            held.release()
            await whole(coordinator, [batch, interactive])

            dying = CoordinatorLink(coordinator.path, 3)  # a third worker, which dies holding a background slot
            await dying.connect({"m": [2, 4, 5.0]}, lambda: "")
            await asyncio.wait_for(SharedAdmission(dying, {"m": 2}).gate("m").enter_background(), 5)
            assert coordinator.counts()["m"] == (1, 0)
            await settle(lambda: interactive.contended)
            await dying.close()
            await whole(coordinator, [batch, interactive])
            both = [await asyncio.wait_for(interactive.enter(), 5) for _ in range(2)]  # no slot was lost
            for slot in both:
                slot.release()
            await whole(coordinator, [batch, interactive])

    run(scenario)


def test_slots_stay_whole_under_churn_with_background_work() -> None:
    """Interactive and background requests on both workers enter, hold, leave or give up in a seeded random
    order: never more slots held than the model has, and once all are done none stays leased or contended."""

    async def scenario() -> None:
        chance = random.Random(12)
        async with channel(slots=3, queue_length=256, quiet=0.005) as (coordinator, _, admission):
            holding = peak = 0
            ran = {True: 0, False: 0}  # background, interactive requests that held a slot

            async def request(gate: SharedGate, background: bool, gives_up: bool) -> None:
                nonlocal holding, peak
                entering = asyncio.ensure_future(gate.enter_background() if background else gate.enter())
                if gives_up:
                    await asyncio.sleep(chance.random() * 0.003)
                    entering.cancel()
                try:
                    slot = await entering
                except asyncio.CancelledError:
                    return
                holding += 1
                peak = max(peak, holding)
                ran[background] += 1
                await asyncio.sleep(chance.random() * 0.003)
                holding -= 1
                slot.release()

            gates = [admission[0].gate("m"), admission[1].gate("m")]
            work = [request(chance.choice(gates), chance.random() < 0.2, chance.random() < 0.3) for _ in range(200)]
            await asyncio.wait_for(asyncio.gather(*work), 30)
            assert peak <= 3 and ran[True] and ran[False], (peak, ran)
            await whole(coordinator, gates)

    run(scenario)
