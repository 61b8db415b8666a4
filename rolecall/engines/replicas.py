"""Several replicas of one model behind one Engine: least-outstanding-requests balancing,
conversation affinity, health-based ejection and failover.

A request that fails before its first chunk (replica down, 5xx, overloaded) is retried on another
replica, invisibly to the client. Once a chunk was handed on, a failure propagates: the pipeline
turns it into an `error` event.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import TypeVar

from rolecall.core.chunks import EngineBatch, PrefillChunk
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import EngineTimeout, Overloaded, RolecallError, UpstreamError
from rolecall.engines.affinity import AffinityTable, SharedHomes, conversation_key
from rolecall.engines.base import EngineInfo
from rolecall.engines.health import HealthMonitor, Replica, ReplicaStatus
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.engines.upstream_errors import ReplicaFault, Unreachable

log = logging.getLogger("rolecall.engine")
T = TypeVar("T")

# Failures another replica may not share; anything else (400, prompt too long) is the request's own.
_RETRYABLE = (ReplicaFault, Overloaded, EngineTimeout)


class ReplicaSet:
    """The `openai` engine: one model served by one or more OpenAI-compatible servers."""

    def __init__(
        self,
        engines: Sequence[OpenAIChatEngine],
        *,
        context_window: int | None = None,
        health_interval: float = 5.0,
        progress: Callable[[str], None] = log.info,
        shared_homes: SharedHomes | None = None,
        probe: bool = True,
    ) -> None:
        self.replicas = [Replica(engine) for engine in engines]
        self._context = context_window
        self._affinity = AffinityTable()
        self._shared_homes = shared_homes  # several workers: one table in the coordinator, not one each
        self._ties = itertools.count()  # rotates among equally loaded replicas
        self._health_interval = health_interval
        self._monitor = HealthMonitor(self.replicas, health_interval, on_admit=self._admitted)
        self._probes_itself = probe  # False: one of several workers; the parent probes and hands over the answers
        self._progress = progress
        self.info = EngineInfo(context_window=context_window or 0)

    async def start(self) -> None:
        """Probe every replica and start even if none answers: GPU servers often come up after the
        gateway. Until one does, requests get 529 with retry-after; the health probe admits each
        replica as soon as its `/health` answers."""
        await self._monitor.probe_all()
        self._refresh_info()
        for replica in self.replicas:
            state = (
                f"{replica.engine.kind}, context {replica.engine.info.context_window}"
                if replica.started
                else f"down (admitted once its /health answers; probed every {self._health_interval:g} s)"
            )
            self._progress(f"  replica {replica.url}: {state}")
        if self._probes_itself:
            self._monitor.start()

    def on_probed(self, report: Callable[[dict[str, bool]], None]) -> None:
        """Call `report` with each probe round's answers (replica URL -> its /health answered)."""
        self._monitor.on_round = report

    async def take_answers(self, answers: dict[str, bool]) -> None:
        """A probe round made elsewhere (the parent of several workers): admit and eject replicas by it."""
        await self._monitor.apply_answers(answers)

    async def close(self) -> None:
        await self._monitor.close()
        await asyncio.gather(*(r.engine.close() for r in self.replicas))

    async def healthy(self) -> bool:
        """Up while any replica answers the active probe. A failed request ejects its replica from
        routing, but says nothing about the set: the next request may well succeed (and with one
        replica, an ejected replica is still tried), so /health must not flap with it."""
        return any(r.reachable for r in self.replicas)

    def status(self) -> list[ReplicaStatus]:
        """Per-replica health and counters (for /metrics; the URLs hold no credentials)."""
        return [
            ReplicaStatus(
                r.url,
                r.healthy,
                r.in_flight,
                r.requests,
                r.errors,
                r.reachable,
                r.engine.connections.opened,
                r.engine.connections.idle,
            )
            for r in self.replicas
        ]

    async def count_tokens(self, request: GenerationRequest) -> int:
        key = conversation_key(request)
        return await self._with_failover(key, lambda replica: replica.engine.count_tokens(request))

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        key = conversation_key(request)
        return await self._with_failover(key, lambda replica: replica.engine.render_prompt(request))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]:
        key = conversation_key(request)
        tried: set[str] = set()
        failures: list[RolecallError] = []
        while (replica := await self._choose(key, tried)) is not None:
            tried.add(replica.url)
            replica.requests += 1
            replica.in_flight += 1
            sent_any = False
            try:
                # Closing our stream (client gone, stop sequence) closes the upstream one at once.
                async with aclosing(replica.engine.generate(request)) as batches:  # type: ignore[type-var]
                    async for batch in batches:
                        # The prompt's cached part is no output yet: a failure after it still fails over.
                        if not sent_any and not all(isinstance(chunk, PrefillChunk) for chunk in batch):
                            sent_any = True
                            replica.answered_at = time.monotonic()
                            self._bind(key, replica.url)
                        yield batch
                replica.answered_at = time.monotonic()  # it answered: the health probe may rest (health.py)
                return
            except _RETRYABLE as exc:
                self._record_failure(replica, exc)
                if sent_any:
                    raise
                failures.append(exc)
            finally:
                replica.in_flight -= 1
        raise _exhausted(failures, self._health_interval)

    async def _with_failover(self, key: str, call: Callable[[Replica], Awaitable[T]]) -> T:
        tried: set[str] = set()
        failures: list[RolecallError] = []
        while (replica := await self._choose(key, tried)) is not None:
            tried.add(replica.url)
            try:
                return await call(replica)
            except _RETRYABLE as exc:
                self._record_failure(replica, exc)
                failures.append(exc)
        raise _exhausted(failures, self._health_interval)

    async def _choose(self, key: str, tried: set[str]) -> Replica | None:
        """The conversation's home while it is healthy, else the least-loaded healthy replica.
        With no healthy replica left, untried ones are still tried (health may be stale)."""
        candidates = [r for r in self.replicas if r.url not in tried and r.started]
        if not candidates:
            return None
        healthy = [r for r in candidates if r.healthy] or candidates
        if len(healthy) > 1:  # with one choice, where the conversation lives changes nothing
            home = await self._home(key)
            for replica in healthy:
                if replica.url == home:
                    return replica
        least = min(r.in_flight for r in healthy)
        tied = [r for r in healthy if r.in_flight == least]
        chosen = tied[next(self._ties) % len(tied)]
        self._bind(key, chosen.url)
        return chosen

    async def _home(self, key: str) -> str | None:
        if self._shared_homes is None:
            return self._affinity.home(key)
        return await self._shared_homes.home(key)

    def _bind(self, key: str, replica: str) -> None:
        if self._shared_homes is None:
            self._affinity.bind(key, replica)
        else:
            self._shared_homes.bind(key, replica)

    def _record_failure(self, replica: Replica, exc: RolecallError) -> None:
        replica.errors += 1
        if isinstance(exc, ReplicaFault):
            replica.eject(exc.message)  # passive ejection; the health probe re-admits it

    def _admitted(self, replica: Replica) -> None:
        self._refresh_info()

    def _refresh_info(self) -> None:
        # Requests must fit every replica they may land on: the smallest window of those started.
        windows = [r.engine.info.context_window for r in self.replicas if r.started]
        context = self._context or min(windows, default=0)
        started = [r.engine.info for r in self.replicas if r.started]
        self.info = EngineInfo(
            context_window=context,
            vision=all(info.vision for info in started),
            template_tools=all(info.template_tools for info in started),
            streams_prompt_count=bool(started) and all(info.streams_prompt_count for info in started),
        )


def _exhausted(failures: list[RolecallError], probe_interval: float) -> RolecallError:
    """What the client hears when no replica could serve: overloaded wins (it says when to retry), and a
    replica that cannot be reached counts as overloaded."""
    overloaded = [f for f in failures if isinstance(f, Overloaded)]
    if overloaded:
        wait = max(f.retry_after or 0 for f in overloaded)
        return Overloaded("Overloaded", retry_after=wait or 1)
    unreachable = [f for f in failures if isinstance(f, Unreachable)]
    if unreachable:
        reason = unreachable[-1].message
        return Overloaded(f"Overloaded: no upstream replica could be reached ({reason})", retry_after=1)
    if failures:
        last = failures[-1]
        if isinstance(last, ReplicaFault):
            return UpstreamError(f"no upstream replica could serve the request (last: {last.message})")
        return last
    # None has answered since start-up: it may still be loading its model. Retry once it is probed again.
    return Overloaded(
        "Overloaded: no upstream replica is up yet; retry shortly (GET /health lists each replica's state)",
        retry_after=max(1, math.ceil(probe_interval)),
    )
