"""Two worker apps sharing one coordinator, as `rolecall serve --workers 2` runs them: admission is per
model across workers, a thinking signature made by one verifies on the other, a follow-up lands on its
conversation's replica whichever worker takes it, and /metrics on either sums both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from rolecall.core.chunks import EngineChunk, FinishChunk, ReasoningChunk, TextChunk
from rolecall.core.conversation import GenerationRequest
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import build_registry
from rolecall.service.workers.share import publish_health
from rolecall.settings import ModelConfig, Settings
from tests.real_checks import metric_sample
from tests.support.server import running_server
from tests.support.upstream import ScriptedUpstream, serving
from tests.support.waiting import wait_until
from tests.support.workers import CoordinatorThread, coordinator_thread

QUESTION = {"role": "user", "content": "Why is the sky blue?"}


class HeldEngine(ScriptedEngine):
    """A scripted engine whose streams wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.opened = 0

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineChunk]:
        self.opened += 1
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        async for chunk in super().generate(request):
            yield chunk


def ask(url: str, messages: list[dict], **extra: object) -> httpx.Response:
    body = {"model": "scripted", "max_tokens": 16, "messages": messages, **extra}
    return httpx.post(url + "/v1/messages", json=body, timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[CoordinatorThread, list[str], list[HeldEngine]]]:
    engines = [HeldEngine(), HeldEngine()]
    with coordinator_thread() as coordinator, ExitStack() as stack:
        urls = []
        for number, engine in enumerate(engines, 1):
            registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
            # Each worker its own data_dir: a shared signature can only come from the parent's secret.
            settings = Settings(data_dir=tmp_path / f"worker-{number}", max_in_flight=2, queue_wait=30)
            urls.append(stack.enter_context(running_server(settings, registry, share=coordinator.share(number))))
        yield coordinator, urls, engines


def test_n_plus_one_requests_across_two_workers_one_waits(
    workers: tuple[CoordinatorThread, list[str], list[HeldEngine]],
) -> None:
    coordinator, (first, second), engines = workers
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(ask, first, [QUESTION]) for _ in range(2)]  # both slots, on worker 1
        assert wait_until(lambda: engines[0].opened == 2)
        waiting = pool.submit(ask, second, [QUESTION])  # the third, on worker 2: the model has no slot left
        assert wait_until(lambda: coordinator.counts("scripted") == (2, 1))
        text = httpx.get(second + "/metrics").text
        assert metric_sample(text, "rolecall_admission_in_flight", model="scripted") == 2
        assert metric_sample(text, "rolecall_admission_queued", model="scripted") == 1
        assert engines[1].opened == 0 and not waiting.done()
        for engine in engines:
            engine.release.set()
        assert [answer.result().status_code for answer in (*held, waiting)] == [200, 200, 200]
    assert engines[1].opened == 1
    assert wait_until(lambda: coordinator.counts("scripted") == (0, 0))
    # Three messages, two on one worker and one on the other: a scrape on either counts all three.
    for url in (first, second):
        text = httpx.get(url + "/metrics").text
        assert metric_sample(text, "rolecall_requests_total", route="/v1/messages", status="200") == 3


def test_a_signature_made_on_one_worker_verifies_on_the_other(
    workers: tuple[CoordinatorThread, list[str], list[HeldEngine]],
) -> None:
    _, (first, second), engines = workers
    for engine in engines:
        engine.release.set()
    engines[0].enqueue([ReasoningChunk("Rayleigh scattering."), TextChunk("Scattering."), FinishChunk("stop")])
    content = ask(first, [QUESTION]).json()["content"]
    assert content[0]["type"] == "thinking"
    follow_up = [QUESTION, {"role": "assistant", "content": content}, {"role": "user", "content": "More?"}]
    assert ask(second, follow_up).status_code == 200
    assert engines[1].requests[-1].turns[-2].reasoning == "Rayleigh scattering."
    tampered = [QUESTION, {"role": "assistant", "content": [dict(content[0], thinking="Not mine."), content[1]]}]
    assert ask(second, [*tampered, follow_up[-1]]).status_code == 400


def test_a_follow_up_lands_on_its_replica_whichever_worker_takes_it(tmp_path: Path) -> None:
    upstreams = [ScriptedUpstream(), ScriptedUpstream()]
    with coordinator_thread() as coordinator, ExitStack() as stack:
        replica_urls = [stack.enter_context(serving(upstream)) for upstream in upstreams]
        model = ModelConfig(id="scripted", engine="openai", upstreams=replica_urls, health_interval=30)
        urls = [
            stack.enter_context(
                running_server(
                    Settings(models=[model], data_dir=tmp_path / f"worker-{number}"), share=coordinator.share(number)
                )
            )
            for number in (1, 2)
        ]
        systems = [f"You only talk about {topic}." for topic in ("the sea", "mountains")]
        for system in systems:  # both conversations open on worker 1, one on each replica (least loaded)
            assert ask(urls[0], [QUESTION], system=system).status_code == 200
        homes = [_replica_of(upstreams, system) for system in systems]
        assert sorted(homes) == [0, 1]
        for system, home in zip(reversed(systems), reversed(homes), strict=True):
            history = [QUESTION, {"role": "assistant", "content": "Hello there."}, {"role": "user", "content": "And?"}]
            assert ask(urls[1], history, system=system).status_code == 200
            assert _replica_of(upstreams, system, turn=3) == home, "the follow-up went to another replica"


def _replica_of(upstreams: list[ScriptedUpstream], system: str, turn: int = 1) -> int:
    """Which upstream received the conversation opening with `system`, at its `turn`-th message."""
    for number, upstream in enumerate(upstreams):
        for chat in upstream.chats():
            messages = chat["messages"]
            if messages[0]["content"] == system and len(messages) == turn + 1:
                return number
    raise AssertionError(f"no upstream got turn {turn} of {system!r}")


def test_workers_judge_replicas_by_the_parents_probes_not_their_own(tmp_path: Path) -> None:
    upstreams = [ScriptedUpstream(), ScriptedUpstream()]
    with coordinator_thread() as coordinator, ExitStack() as stack:
        replica_urls = [stack.enter_context(serving(upstream)) for upstream in upstreams]
        # Probes every 50 ms if a worker probed on its own: the count of /health calls below would grow.
        model = ModelConfig(id="scripted", engine="openai", upstreams=replica_urls, health_interval=0.05)
        urls = [
            stack.enter_context(
                running_server(
                    Settings(models=[model], data_dir=tmp_path / f"worker-{number}"), share=coordinator.share(number)
                )
            )
            for number in (1, 2)
        ]
        probes = _probes(upstreams)
        for _ in range(2):  # two failed probes in a row eject a replica
            coordinator.publish_health("scripted", {replica_urls[0]: True, replica_urls[1]: False})
        for url in urls:
            assert wait_until(lambda url=url: _replica_states(url) == ["up", "down"]), _replica_states(url)
        for _ in range(4):
            assert ask(urls[1], [QUESTION]).status_code == 200
        assert len(upstreams[0].chats()) == 4 and not upstreams[1].chats(), "an ejected replica got requests"
        assert _probes(upstreams) == probes, "a worker probed the replicas itself"


def test_the_parents_probe_rounds_reach_every_worker(tmp_path: Path) -> None:
    upstreams = [ScriptedUpstream(), ScriptedUpstream()]
    with coordinator_thread() as coordinator, ExitStack() as stack:
        replica_urls = [stack.enter_context(serving(upstream)) for upstream in upstreams]
        model = ModelConfig(id="scripted", engine="openai", upstreams=replica_urls, health_interval=0.1)
        # The parent's side, as cli/workers.py wires it: its own replica set probes, the coordinator hands it on.
        parent = build_registry([model])
        publish_health(parent, coordinator.coordinator)
        coordinator.run(parent.start())
        stack.callback(lambda: coordinator.run(parent.close()))
        urls = [
            stack.enter_context(
                running_server(
                    Settings(models=[model], data_dir=tmp_path / f"worker-{number}"), share=coordinator.share(number)
                )
            )
            for number in (1, 2)
        ]
        upstreams[1].healthy = False
        for url in urls:
            assert wait_until(lambda url=url: _replica_states(url) == ["up", "down"]), _replica_states(url)
        upstreams[1].healthy = True
        for url in urls:
            assert wait_until(lambda url=url: _replica_states(url) == ["up", "up"]), _replica_states(url)


def _probes(upstreams: list[ScriptedUpstream]) -> int:
    return sum(1 for upstream in upstreams for path, _ in upstream.requests if path == "/health")


def _replica_states(url: str) -> list[str]:
    replicas = httpx.get(url + "/health").json()["replicas"]["scripted"]
    return list(replicas.values())
