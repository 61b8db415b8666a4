"""Replica health: per-replica counters, passive ejection on failures, and an active probe that
re-admits replicas (and ejects silent ones) every `interval` seconds.

A replica in routing that answered a generation within the last interval is not probed: the answer proved
what `/health` would (a busy server is probed not at all, an idle one every interval). Ejected replicas get no
such pass: only a probe re-admits them, and a replica that fails a stream is ejected at once, as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rolecall.engines.openai_upstream import OpenAIChatEngine

log = logging.getLogger("rolecall.engine")

# Probes in a row that must fail before a replica is ejected: one slow answer under load is not an outage.
# (Failed requests eject at once: that is passive ejection.)
_FAILED_PROBES_TO_EJECT = 2


@dataclass
class Replica:
    """One upstream server and what rolecall knows about it right now."""

    engine: OpenAIChatEngine
    healthy: bool = False  # routing: admitted by a successful start/probe, ejected on a failed request or probe
    # What /health reports: the active probe's verdict alone, with the same hysteresis (down after
    # `_FAILED_PROBES_TO_EJECT` failed probes in a row, up at the first answer), never the last request.
    reachable: bool = False
    started: bool = False  # probed (kind, context) at least once
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    failed_probes: int = 0  # consecutive
    ejected_at: float | None = None  # monotonic time of the last ejection
    answered_at: float | None = None  # monotonic time a generation last streamed from it (replicas.py)

    @property
    def url(self) -> str:
        return self.engine.base_url

    def eject(self, reason: str) -> None:
        if self.healthy:
            log.warning("replica %s ejected: %s", self.url, reason)
        self.healthy = False
        self.ejected_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """A snapshot for /metrics and the start-up table."""

    url: str
    healthy: bool
    in_flight: int
    requests: int
    errors: int
    reachable: bool = False  # its /health answers the active probe (routing may still skip it: `healthy`)
    connections_opened: int = 0  # streaming connections made since start (kept alive and reused)
    connections_idle: int = 0  # kept-alive connections waiting for the next generation (at most `pool_size`)


class HealthMonitor:
    """Probes every replica's `/health` on a timer. A replica that never started (it was down at
    start-up) is started when it first answers, so it joins with its kind and context known."""

    def __init__(
        self, replicas: Sequence[Replica], interval: float, on_admit: Callable[[Replica], None] | None = None
    ) -> None:
        self._replicas = replicas
        self._interval = interval
        self._on_admit = on_admit
        self._task: asyncio.Task[None] | None = None
        # Told each round's answers (replica URL -> answered): with several workers the parent probes once
        # and hands them to every worker (`apply_answers`), instead of each worker probing on its own.
        self.on_round: Callable[[dict[str, bool]], None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def probe_all(self) -> None:
        answers = await asyncio.gather(*(self._probe(replica) for replica in self._replicas))
        if self.on_round is not None:
            self.on_round({replica.url: answered for replica, answered in zip(self._replicas, answers, strict=True)})

    async def apply_answers(self, answers: dict[str, bool]) -> None:
        """Take a round of probe answers made elsewhere (the parent of several workers) as if probed here."""
        await asyncio.gather(*(self._judge(r, answers[r.url]) for r in self._replicas if r.url in answers))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_all()

    async def _probe(self, replica: Replica) -> bool:
        answered = self._answering(replica) or await replica.engine.healthy()
        await self._judge(replica, answered)
        return answered

    def _answering(self, replica: Replica) -> bool:
        """Whether real traffic proved the replica up within the last interval (then it needs no probe)."""
        answered = replica.answered_at
        return (
            replica.healthy
            and replica.reachable
            and answered is not None
            and time.monotonic() - answered < self._interval
        )

    async def _judge(self, replica: Replica, answered: bool) -> None:
        if not answered:
            replica.failed_probes += 1
            if replica.failed_probes >= _FAILED_PROBES_TO_EJECT or not replica.started:
                replica.reachable = False
                replica.eject(f"{replica.failed_probes} health probes failed")
            return
        replica.failed_probes = 0
        replica.reachable = replica.started  # a replica never started joins below, once it could be probed
        if replica.ejected_at is not None and time.monotonic() - replica.ejected_at < self._interval:
            return  # sit out at least one interval: a replica failing requests but answering /health must not flap
        if not replica.started:
            try:
                await replica.engine.start()
            except Exception as exc:  # a half-up server: try again on the next round
                log.warning("replica %s answers but could not be probed: %s", replica.url, exc)
                return
            replica.started = True
            replica.reachable = True
        if not replica.healthy:
            log.info("replica %s admitted", replica.url)
            replica.healthy = True
            if self._on_admit is not None:
                self._on_admit(replica)
