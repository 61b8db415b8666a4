"""Admission control: per model, at most `slots` requests reach the engine at once; up to
`queue_length` more wait in arrival order, each at most `max_wait` seconds. Beyond that a request
is shed with 529 `overloaded_error` and `retry-after`, before a stream commits to 200.

A waiter whose client leaves is cancelled and dropped from the queue, so it never reaches the engine.

Background work (a message batch's requests) enters only once no interactive request has been in flight or
waiting for `BACKGROUND_QUIET` seconds. A client's next request follows its last one within milliseconds, so
under steady interactive traffic no batch request starts at all. An interactive request that arrives while a
batch request is still processing its prompt stops it (`Preempted`: it runs again later); one already
generating shares the engine with it (`batch_concurrency` of them at most).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterable
from typing import Protocol

from rolecall.core.errors import Overloaded
from rolecall.service.registry import ServedModel

_UNDECLARED_SLOTS = 64  # an engine that does not say how many sequences it runs (an upstream server)
_RETRY_AFTER = 1.0  # seconds: slots free up quickly; the SDKs back off further on repeated 529s
# Seconds without interactive requests before background work may start: longer than the gap between one
# client's consecutive requests (a tool loop, a streaming UI sending the next turn), so a batch request never
# starts its prefill just before an interactive request arrives (docs/performance.md, "Message batches beside
# interactive traffic").
BACKGROUND_QUIET = 0.5


class Slot(Protocol):
    """What an admitted request holds: this process's `Pass`, or a worker's slot at the coordinator. A background
    request's slot has a `preempted` event, set if an interactive request enters while it is still `prefilling`
    (no output yet); an interactive request's has none."""

    preempted: asyncio.Event | None
    prefilling: bool

    def release(self) -> None:
        """Give the slot back; idempotent."""


class Preempted(Overloaded):
    """A background request stopped before its first output token, to let an interactive one in: it runs again
    later (its prompt mostly still in the engine's prefix cache)."""


class Pass:
    """One admitted request's slot; `release` is idempotent. A background request's pass is `preempted` while
    it is `prefilling` (no output yet) if an interactive request enters."""

    __slots__ = ("_background", "_gate", "_released", "preempted", "prefilling")

    def __init__(self, gate: ModelGate, background: bool = False) -> None:
        self._gate = gate
        self._background = background
        self._released = False
        self.preempted: asyncio.Event | None = asyncio.Event() if background else None
        self.prefilling = background

    def release(self) -> None:
        if not self._released:
            self._released = True
            if self._background:
                self._gate.background -= 1
                self._gate._background_passes.discard(self)
            else:
                self._gate._interactive_at = time.monotonic()
            self._gate._hand_on()


class ModelGate:
    """The bounded queue in front of one model's engine."""

    def __init__(self, slots: int, queue_length: int, max_wait: float, quiet: float = BACKGROUND_QUIET) -> None:
        self.slots = slots
        self.quiet = quiet
        self.queue_length = queue_length
        self.max_wait = max_wait
        self.in_flight = 0
        self.background = 0  # of `in_flight`, background requests
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._idle: list[asyncio.Future[None]] = []  # background requests waiting for the gate to go quiet
        self._interactive_at = float("-inf")  # when an interactive request last entered or left (monotonic)
        self._background_passes: set[Pass] = set()

    @property
    def queued(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def enter(self) -> Pass:
        """A slot for one request: at once, after waiting in the queue, or `Overloaded`. Background requests
        still processing their prompt stop for it (see `Preempted`)."""
        self.arrive()
        if self.in_flight < self.slots and not self.queued:
            self.in_flight += 1
            return Pass(self)
        if self.queued >= self.queue_length:
            raise Overloaded("Overloaded", retry_after=_RETRY_AFTER)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._hand_on()  # the slot arrived just as we gave up: pass it along
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Overloaded("Overloaded", retry_after=_RETRY_AFTER) from None
            raise
        return Pass(self)

    def arrive(self) -> None:
        """An interactive request wants a slot: the quiet spell background work waits for starts again, and
        background requests still processing their prompt are preempted (`enter` calls it; so does the workers'
        coordinator for a request it seats without waiting)."""
        self._interactive_at = time.monotonic()
        for held in self._background_passes:
            if held.prefilling and held.preempted is not None:
                held.preempted.set()

    async def enter_background(self) -> Pass:
        """A slot for background work, once no interactive request has held or waited for one for `quiet`
        seconds (never `Overloaded`: it waits as long as it takes; cancel it to give up)."""
        while True:
            if self._quiet():
                remaining = self._interactive_at + self.quiet - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.sleep(remaining)  # then look again: another may have come meanwhile
                continue
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                # Woken when a slot frees up; a queued request that gave up frees none, hence the second look.
                await asyncio.wait({waiter}, timeout=1.0)
            finally:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._idle.remove(waiter)
        self.in_flight += 1
        self.background += 1
        admitted = Pass(self, background=True)
        self._background_passes.add(admitted)
        return admitted

    def _quiet(self) -> bool:
        return self.in_flight == self.background and self.in_flight < self.slots and not self.queued

    def _hand_on(self) -> None:
        # The slot goes straight to the longest waiter (FIFO), so a newcomer cannot overtake it.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1
        if self._idle and self._quiet():
            for idle in self._idle:  # they check again: the first to run takes the slot
                if not idle.done():
                    idle.set_result(None)


def slots_for(model: ServedModel, max_in_flight: int | None) -> int:
    """A model's slots: `max_in_flight`, else as many sequences as its engine runs at once."""
    return max_in_flight or model.engine.info.slots or _UNDECLARED_SLOTS


class Admission:
    """One gate per served model."""

    def __init__(self, gates: dict[str, ModelGate]) -> None:
        self._gates = gates

    @classmethod
    def for_models(
        cls, models: Iterable[ServedModel], *, max_in_flight: int | None, queue_length: int, queue_wait: float
    ) -> Admission:
        """`max_in_flight` slots per model (None: as many as its engine runs at once)."""
        return cls({model.id: ModelGate(slots_for(model, max_in_flight), queue_length, queue_wait) for model in models})

    def gate(self, model_id: str) -> ModelGate:
        return self._gates[model_id]

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per model: (requests holding a slot, requests waiting)."""
        return {model: (gate.in_flight, gate.queued) for model, gate in self._gates.items()}
