"""The active health probe rests while traffic proves a replica up, and only then: a scripted upstream counts
the probes (`GET /health`), a real `ReplicaSet` streams from it, and each probe round is run by hand (no timer,
so nothing here depends on how fast the machine is)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.core.errors import RolecallError
from rolecall.engines.health import HealthMonitor
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.engines.replicas import ReplicaSet
from tests.support.upstream import ScriptedUpstream, Status, serving

INTERVAL = 30.0  # seconds: far longer than the test, so "within the last interval" holds throughout
REQUEST = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=8)


@pytest.fixture
def upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    app = ScriptedUpstream()
    with serving(app) as url:
        yield app, url


def _probes(app: ScriptedUpstream) -> int:
    return sum(1 for path, _ in app.requests if path == "/health")


async def _stream(replicas: ReplicaSet) -> None:
    async for _ in replicas.generate(REQUEST):
        pass


def test_traffic_spares_the_probe_and_a_failing_stream_still_ejects(upstream: tuple[ScriptedUpstream, str]) -> None:
    app, url = upstream

    async def scenario() -> None:
        replicas = ReplicaSet([OpenAIChatEngine(url)], health_interval=INTERVAL, probe=False)
        monitor = HealthMonitor(replicas.replicas, INTERVAL)
        (replica,) = replicas.replicas
        try:
            await replicas.start()  # the start-up probe admits it
            assert replica.healthy and _probes(app) == 1
            await monitor.probe_all()
            assert _probes(app) == 2, "no traffic yet: probed"
            await _stream(replicas)
            await monitor.probe_all()
            assert _probes(app) == 2, "it just streamed: no probe needed"
            assert replica.healthy and replica.reachable and (await replicas.healthy())

            app.fail_with = Status(500, {"error": {"message": "CUDA error"}})
            with pytest.raises(RolecallError):
                await _stream(replicas)
            assert not replica.healthy, "a failed stream ejects at once, recent traffic or not"
            app.healthy = False
            await monitor.probe_all()
            await monitor.probe_all()
            assert _probes(app) == 4, "an ejected replica is probed: only a probe re-admits it"
            assert not replica.healthy and not replica.reachable

            app.fail_with, app.healthy = None, True
            replica.ejected_at = time.monotonic() - INTERVAL  # its sit-out is over
            await monitor.probe_all()
            assert replica.healthy and _probes(app) == 5, "re-admitted by its probe"
            replica.answered_at = time.monotonic() - INTERVAL  # its last answer is one interval old
            await monitor.probe_all()
            assert _probes(app) == 6, "traffic older than an interval proves nothing now"
        finally:
            await replicas.close()

    asyncio.run(scenario())


def test_the_probe_keeps_one_connection_and_falls_back_to_the_model_list() -> None:
    app = ScriptedUpstream(owned_by="ollama")  # no /health: the probe lists the models instead

    async def probe_thrice(url: str) -> tuple[list[bool], int]:
        engine = OpenAIChatEngine(url)
        try:
            answers = [await engine.healthy() for _ in range(3)]
            return answers, engine._probes.stats.opened
        finally:
            await engine.close()

    with serving(app) as url:
        assert asyncio.run(probe_thrice(url)) == ([True] * 3, 1), "six GETs, one connection"
    assert [path for path, _ in app.requests] == ["/health", "/v1/models"] * 3
    assert asyncio.run(probe_thrice("http://127.0.0.1:9"))[0] == [False] * 3  # nothing listens: down, no error
