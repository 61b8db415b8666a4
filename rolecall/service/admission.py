"""Admission control: per model, at most `slots` requests reach the engine at once; up to
`queue_length` more wait in arrival order, each at most `max_wait` seconds. Beyond that a request
is shed with 529 `overloaded_error` and `retry-after`, before a stream commits to 200.

A waiter whose client leaves is cancelled and dropped from the queue, so it never reaches the engine.

Background work (a message batch's requests) enters only while no interactive request is in flight or waiting,
so interactive requests never share the engine with a batch request that started after them, and the next
one arriving waits at most for the batch requests already running (`batch_concurrency` of them at most).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable
from typing import Protocol

from rolecall.core.errors import Overloaded
from rolecall.service.registry import ServedModel

_UNDECLARED_SLOTS = 64  # an engine that does not say how many sequences it runs (an upstream server)
_RETRY_AFTER = 1.0  # seconds: slots free up quickly; the SDKs back off further on repeated 529s


class Slot(Protocol):
    """What an admitted request holds: this process's `Pass`, or a worker's slot at the coordinator."""

    def release(self) -> None:
        """Give the slot back; idempotent."""


class Pass:
    """One admitted request's slot; `release` is idempotent."""

    __slots__ = ("_background", "_gate", "_released")

    def __init__(self, gate: ModelGate, background: bool = False) -> None:
        self._gate = gate
        self._background = background
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            if self._background:
                self._gate.background -= 1
            self._gate._hand_on()


class ModelGate:
    """The bounded queue in front of one model's engine."""

    def __init__(self, slots: int, queue_length: int, max_wait: float) -> None:
        self.slots = slots
        self.queue_length = queue_length
        self.max_wait = max_wait
        self.in_flight = 0
        self.background = 0  # of `in_flight`, background requests
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._idle: list[asyncio.Future[None]] = []  # background requests waiting for the gate to go quiet

    @property
    def queued(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def enter(self) -> Pass:
        """A slot for one request: at once, after waiting in the queue, or `Overloaded`."""
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

    async def enter_background(self) -> Pass:
        """A slot for background work, once no interactive request holds or waits for one (never `Overloaded`:
        it waits as long as it takes; cancel it to give up)."""
        while not self._quiet():
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
        return Pass(self, background=True)

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
