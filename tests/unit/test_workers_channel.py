"""The coordinator channel of `--workers`: a real coordinator on a Unix socket and two real worker links in
one event loop (each link is what one worker process holds). Admission is per model across the links, a
link that goes away gives its slots back, affinity and /metrics are shared."""

from __future__ import annotations

import asyncio
import random

import pytest

from rolecall.core.errors import Overloaded
from rolecall.service.workers.exposition import merge_expositions
from rolecall.service.workers.link import CoordinatorLink, SharedAdmission, SharedAffinity, SharedGate
from tests.support.worker_channel import channel, run, settle


def test_slots_are_per_model_across_workers() -> None:
    async def scenario() -> None:
        async with channel(slots=2) as (coordinator, _, admission):
            first = await admission[0].gate("m").enter()
            second = await admission[1].gate("m").enter()
            third = asyncio.create_task(admission[1].gate("m").enter())  # N + 1 on the other worker: it waits
            await settle(lambda: coordinator.counts()["m"] == (2, 1))
            assert not third.done()
            assert admission[1].counts()["m"] == (1, 1)
            first.release()  # a slot freed on worker 1 goes to the request waiting on worker 2
            admitted = await asyncio.wait_for(third, 5)
            await settle(lambda: coordinator.counts()["m"] == (2, 0))
            for slot in (second, admitted, first):
                slot.release()
            await settle(lambda: coordinator.counts()["m"] == (0, 0))

    run(scenario)


def test_a_full_queue_is_overloaded_and_a_waiter_that_leaves_frees_its_place() -> None:
    async def scenario() -> None:
        async with channel(slots=1, queue_length=1) as (coordinator, _, admission):
            held = await admission[0].gate("m").enter()
            waiting = asyncio.create_task(admission[1].gate("m").enter())
            await settle(lambda: coordinator.counts()["m"] == (1, 1))
            with pytest.raises(Overloaded):
                await admission[0].gate("m").enter()
            waiting.cancel()  # its client left
            await settle(lambda: coordinator.counts()["m"] == (1, 0))
            held.release()
            await settle(lambda: coordinator.counts()["m"] == (0, 0))

    run(scenario)


def test_a_worker_that_goes_away_gives_its_slots_back() -> None:
    async def scenario() -> None:
        async with channel(slots=2) as (coordinator, links, admission):
            await admission[0].gate("m").enter()
            await admission[0].gate("m").enter()
            waiting = asyncio.create_task(admission[1].gate("m").enter())
            await settle(lambda: coordinator.counts()["m"] == (2, 1))
            await links[0].close()  # what the coordinator sees when a worker process dies
            await asyncio.wait_for(waiting, 5)
            await settle(lambda: coordinator.counts()["m"] == (1, 0))

    run(scenario)


def test_a_spare_slot_kept_by_one_worker_goes_to_the_other_even_without_a_queue() -> None:
    async def scenario() -> None:
        async with channel(slots=2, queue_length=0) as (coordinator, _, admission):
            first, second = admission[0].gate("m"), admission[1].gate("m")
            busy = [await first.enter(), await first.enter()]
            busy.pop().release()  # worker 1 keeps this slot as a spare for its next request
            assert (first.held, first.leased) == (1, 2)
            assert coordinator.counts()["m"] == (2, 0)
            admitted = await asyncio.wait_for(second.enter(), 5)  # no queue: the spare must come back, not a 529
            assert (first.held, first.leased) == (1, 1)
            await settle(lambda: coordinator.counts()["m"] == (2, 0))
            with pytest.raises(Overloaded):  # both slots busy now, and no queue
                await second.enter()
            for slot in (admitted, *busy):
                slot.release()
            await settle(lambda: coordinator.counts()["m"] == (0, 0))

    run(scenario)


def test_while_a_request_waits_a_busy_worker_hands_its_slot_on_rather_than_keeping_it() -> None:
    async def scenario() -> None:
        async with channel(slots=2) as (coordinator, _, admission):
            first, second = admission[0].gate("m"), admission[1].gate("m")
            held = [await first.enter(), await first.enter()]  # worker 1 busy: it would keep a spare
            waiting = asyncio.create_task(second.enter())
            await settle(lambda: coordinator.counts()["m"] == (2, 1))
            held.pop().release()  # goes to worker 2's waiting request, not into worker 1's spares
            admitted = await asyncio.wait_for(waiting, 5)
            newcomer = asyncio.create_task(first.enter())  # arrives after it: waits its turn in the shared queue
            await settle(lambda: coordinator.counts()["m"] == (2, 1))
            assert not newcomer.done()
            admitted.release()
            held.append(await asyncio.wait_for(newcomer, 5))
            for slot in held:
                slot.release()
            await settle(lambda: coordinator.counts()["m"] == (0, 0))

    run(scenario)


def test_a_worker_that_connects_while_requests_wait_keeps_no_spares() -> None:
    async def scenario() -> None:
        async with channel(slots=2) as (coordinator, _, admission):
            held = [await admission[0].gate("m").enter(), await admission[0].gate("m").enter()]
            waiting = asyncio.create_task(admission[1].gate("m").enter())
            await settle(lambda: coordinator.counts()["m"] == (2, 1))
            restarted = CoordinatorLink(coordinator.path, 3)  # a worker started again meanwhile
            gate = SharedAdmission(restarted, {"m": 2}).gate("m")
            await restarted.connect({"m": [2, 4, 5.0]}, lambda: "")
            try:
                await settle(lambda: gate.contended)
            finally:
                await restarted.close()
            for slot in held:
                slot.release()
            (await asyncio.wait_for(waiting, 5)).release()

    run(scenario)


def test_leases_never_exceed_the_slots_and_all_come_back_under_churn() -> None:
    """Requests on both workers enter, hold, leave or give up waiting in a seeded random order: at no point do
    more requests hold a slot than the model has, and once all are done no slot stays leased anywhere."""

    async def scenario() -> None:
        chance = random.Random(15)
        async with channel(slots=3, queue_length=256) as (coordinator, _, admission):
            holding = peak = 0

            async def request(gate: SharedGate, gives_up: bool) -> None:
                nonlocal holding, peak
                entering = asyncio.ensure_future(gate.enter())
                if gives_up:
                    await asyncio.sleep(chance.random() * 0.003)
                    entering.cancel()
                try:
                    slot = await entering
                except asyncio.CancelledError:
                    return
                holding += 1
                peak = max(peak, holding)
                await asyncio.sleep(chance.random() * 0.003)
                holding -= 1
                slot.release()

            gates = [admission[0].gate("m"), admission[1].gate("m")]
            work = [request(chance.choice(gates), chance.random() < 0.3) for _ in range(200)]
            await asyncio.wait_for(asyncio.gather(*work), 30)
            assert peak == 3, f"at most 3 slots, and under this load all of them in use at some point ({peak})"
            await settle(lambda: coordinator.counts()["m"] == (0, 0))
            assert [(gate.held, gate.waiting, gate.leased) for gate in gates] == [(0, 0, 0), (0, 0, 0)]

    run(scenario)


def test_affinity_is_one_table_for_all_workers() -> None:
    async def scenario() -> None:
        async with channel() as (_, links, _admission):
            on_first, on_second = SharedAffinity(links[0], "m"), SharedAffinity(links[1], "m")
            assert await on_second.home("conversation") is None
            on_first.bind("conversation", "http://replica-2")
            assert await on_second.home("conversation") == "http://replica-2"
            assert await SharedAffinity(links[1], "other").home("conversation") is None

    run(scenario)


def test_a_scrape_on_either_worker_sums_both() -> None:
    async def scenario() -> None:
        async with channel() as (_, links, _admission):
            for link in links:
                assert 'rolecall_requests_total{route="/v1/messages",status="200"} 7.0' in await link.scrape()

    run(scenario)


def test_a_lost_coordinator_stops_the_worker_and_refuses_new_requests() -> None:
    async def scenario() -> None:
        async with channel() as (coordinator, links, admission):
            lost = asyncio.Event()
            links[0].on_lost = lost.set
            await coordinator.close()
            await asyncio.wait_for(lost.wait(), 5)
            with pytest.raises(Overloaded):
                await admission[0].gate("m").enter()

    run(scenario)


def test_merging_sums_counts_keeps_the_earliest_creation_and_one_health() -> None:
    text = (
        "# HELP rolecall_requests_total HTTP requests\n# TYPE rolecall_requests_total counter\n"
        'rolecall_requests_total{{route="/v1/messages",status="200"}} {count}\n'
        'rolecall_requests_created{{route="/v1/messages",status="200"}} {created}\n'
        "# HELP rolecall_upstream_healthy 1 while admitted\n# TYPE rolecall_upstream_healthy gauge\n"
        'rolecall_upstream_healthy{{model="m",replica="http://r1"}} 1.0\n'
    )
    merged = merge_expositions([text.format(count=2, created=200.0), text.format(count=5, created=100.0)])
    assert 'rolecall_requests_total{route="/v1/messages",status="200"} 7.0' in merged
    assert 'rolecall_requests_created{route="/v1/messages",status="200"} 100.0' in merged
    assert 'rolecall_upstream_healthy{model="m",replica="http://r1"} 1.0' in merged
