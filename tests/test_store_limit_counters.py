"""The limits' counters on both real backends, shared by two "instances" (two databases opened on one file or
one PostgreSQL, each with its own limiter): one key's limits hold exactly across them under concurrent load."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rolecall.core.caller import Caller, KeyLimits
from rolecall.core.errors import RateLimited
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.limits import Limiter, Ticket
from rolecall.service.limits.state import KeyState
from rolecall.service.registry import ServedModel
from rolecall.store.counters import LIMITS_MIGRATIONS, StoreCounters
from rolecall.store.database import Database
from rolecall.store.migrations import STORE_MIGRATIONS

pytestmark = pytest.mark.anyio
NOW = 1_800_000_020.0
MODEL = ServedModel("smollm2", ScriptedEngine(), "SmolLM2", "2024-11-01T00:00:00Z")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def instances(store_url: str) -> AsyncIterator[list[Limiter]]:
    """Two limiters, each over its own connection pool to the one database."""
    databases = [await Database.open(store_url, (*STORE_MIGRATIONS, *LIMITS_MIGRATIONS)) for _ in range(2)]
    # One fixed time for both: a burst that straddled a minute window's edge would count in two windows.
    limiters = [Limiter(StoreCounters(database), clock=lambda: NOW) for database in databases]
    try:
        yield limiters
    finally:
        for limiter in limiters:
            await limiter.close()
        for database in databases:
            await database.close()


def _key(request_name: str, **limits: object) -> Caller:
    return Caller("k" + request_name[-6:], request_name, KeyLimits(**limits))  # type: ignore[arg-type]


async def _admit_all(limiters: list[Limiter], caller: Caller, count: int) -> list[Ticket | None]:
    async def one(limiter: Limiter) -> Ticket | None:
        try:
            return await limiter.admit(caller, MODEL.id, MODEL)
        except RateLimited:
            return None

    return await asyncio.gather(*(one(limiters[i % 2]) for i in range(count)))


async def test_requests_per_minute_hold_exactly_across_instances(
    instances: list[Limiter], request: pytest.FixtureRequest
) -> None:
    caller = _key(request.node.name, requests_per_minute=30)
    admitted = [ticket for ticket in await _admit_all(instances, caller, 60) if ticket is not None]
    assert len(admitted) == 30
    remaining = sorted(int(t.headers["anthropic-ratelimit-requests-remaining"]) for t in admitted)
    assert remaining == list(range(30))  # every admission saw the one count before it
    for ticket in admitted:
        await ticket.finish(1)


async def test_concurrency_holds_across_instances_and_frees_on_finish(
    instances: list[Limiter], request: pytest.FixtureRequest
) -> None:
    caller = _key(request.node.name, concurrency=3)
    first = [ticket for ticket in await _admit_all(instances, caller, 10) if ticket is not None]
    assert len(first) == 3
    await first[0].finish(5)
    second = [ticket for ticket in await _admit_all(instances, caller, 4) if ticket is not None]
    assert len(second) == 1
    for ticket in (*first[1:], *second):
        await ticket.finish(5)


async def test_tokens_add_up_exactly_under_concurrent_settles(
    instances: list[Limiter], request: pytest.FixtureRequest
) -> None:
    caller = _key(request.node.name, tokens_per_minute=10_000, quota_tokens=100_000, quota_window_seconds=3600)
    tickets = [ticket for ticket in await _admit_all(instances, caller, 40) if ticket is not None]
    assert len(tickets) == 40
    await asyncio.gather(*(ticket.finish(7) for ticket in tickets))
    record = await instances[0].counters.read(caller.label)
    state = KeyState.loads(record)
    assert (state.tokens.used, state.quota.used) == (280, 280)


async def test_an_instance_whose_view_is_stale_still_counts_right(
    instances: list[Limiter], request: pytest.FixtureRequest
) -> None:
    # Alternate instances one by one: each writes against a version the other has moved past.
    caller = _key(request.node.name, requests_per_minute=5)
    outcomes: list[bool] = []
    for i in range(7):
        try:
            ticket = await instances[i % 2].admit(caller, MODEL.id, MODEL)
        except RateLimited:
            outcomes.append(False)
        else:
            outcomes.append(True)
            await ticket.finish(0)
    assert outcomes == [True] * 5 + [False] * 2
