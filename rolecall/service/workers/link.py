"""A worker's end of the coordinator channel, and the shared admission and affinity built on it.

Per request, while nobody waits for the model: nothing, as long as the worker has a spare slot from an
earlier request (it asks for one more, one round trip, when it has none). While requests wait: one round trip
to enter the shared queue, one message without an answer to leave; so too while a message batch's request
waits or runs for the model (the coordinator must see every interactive request to give it priority). Affinity
costs one round trip per request, only for models with several replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rolecall.core.errors import Overloaded
from rolecall.service.workers.channel import LINE_LIMIT, Message, receive, send

log = logging.getLogger("rolecall.workers")

_RETRY_AFTER = 1.0
_GONE = "Overloaded: this rolecall worker is stopping; retry shortly"


class CoordinatorLink:
    """The connection to the parent's coordinator. `on_lost` runs once if the parent goes away."""

    def __init__(self, path: Path, number: int) -> None:
        self.path = path
        self.number = number
        self._ids = itertools.count(1)
        self._expected: dict[int, asyncio.Future[Message]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._expose: Callable[[], str] = lambda: ""
        self.on_lost: Callable[[], None] = lambda: None
        # The parent's `drain` (stop accepting, let streams finish) and `exit` (end them now, a second Ctrl-C):
        # messages rather than signals, so a stop that reaches a worker both ways (a signal to the whole process
        # group, systemd's default, and the parent's word) counts once.
        self.on_drain: Callable[[], None] = lambda: None
        self.on_exit: Callable[[], None] = lambda: None
        self.lost = False
        self.gates: dict[str, SharedGate] = {}  # model -> this worker's side of its gate (SharedAdmission)
        # Model -> what takes the parent's probe answers for its replicas (ReplicaSet.take_answers).
        self.health_readers: dict[str, Callable[[dict[str, bool]], Coroutine[Any, Any, None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, gates: dict[str, list[float]], expose: Callable[[], str]) -> None:
        """Connect, size the shared gates (the first worker's word counts) and answer scrapes with `expose()`."""
        reader, self._writer = await asyncio.open_unix_connection(str(self.path), limit=LINE_LIMIT)
        self._expose = expose
        self._reader_task = asyncio.create_task(self._read(reader))
        self.tell({"op": "hello", "worker": self.number, "gates": gates})

    def tell(self, message: Message) -> None:
        """Send a message that expects no answer (lost silently once the parent is gone)."""
        if self._writer is not None and not self.lost:
            send(self._writer, message)

    def expect(self) -> tuple[int, asyncio.Future[Message]]:
        """A fresh request id and the future its answer will resolve."""
        number = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_exception(Overloaded(_GONE, retry_after=_RETRY_AFTER))
        else:
            self._expected[number] = future
        return number, future

    async def ask(self, message: Message) -> Message:
        """One round trip."""
        number, future = self.expect()
        self.tell({**message, "id": number})
        try:
            return await future
        finally:
            self._expected.pop(number, None)

    async def scrape(self) -> str:
        """Every worker's /metrics exposition, summed by the coordinator."""
        text: str = (await self.ask({"op": "scrape"}))["text"]
        return text

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await receive(reader)) is not None:
            op = message.get("op")
            if op == "expose":
                self.tell({"re": message["id"], "text": self._expose()})
                continue
            if op == "health":
                self._take_health(message["model"], message["answers"])
                continue
            if op in ("contend", "calm"):
                self._take_contention(op, message)
                continue
            if op == "preempt":
                gate = self.gates.get(message["model"])
                if gate is not None:
                    gate.preempt(message["id"])
                continue
            if op in ("drain", "exit"):
                (self.on_drain if op == "drain" else self.on_exit)()
                continue
            future = self._expected.pop(message["re"], None)
            if future is not None and not future.done():
                future.set_result(message)
        self.lost = True
        for future in self._expected.values():
            if not future.done():
                future.set_exception(Overloaded(_GONE, retry_after=_RETRY_AFTER))
        self._expected.clear()
        log.warning("rolecall worker %d: the coordinator went away; stopping", self.number)
        self.on_lost()

    def _take_contention(self, op: str, message: Message) -> None:
        gate = self.gates.get(message["model"])
        if op == "calm":
            if gate is not None:
                gate.calm()
            return
        if gate is not None:
            gate.contend()  # its spares' `release` goes out before the answer: the coordinator sees both in order
        if "id" in message:  # a recall waits for the answer; the word to a worker that just connected does not
            self.tell({"re": message["id"]})

    def _take_health(self, model: str, answers: dict[str, bool]) -> None:
        reader = self.health_readers.get(model)
        if reader is not None:
            task = asyncio.create_task(reader(answers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()


class SharedPass:
    """One request's slot on a worker; `release` is idempotent and sends a message only when the worker gives
    the slot back to the coordinator rather than keeping it for its next request."""

    __slots__ = ("_gate", "_released", "preempted", "prefilling")

    def __init__(self, gate: SharedGate) -> None:
        self._gate = gate
        self._released = False
        self.preempted: asyncio.Event | None = None  # an interactive request is never preempted
        self.prefilling = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gate.held -= 1
            self._gate.settle()


class SharedBackgroundPass:
    """A background request's slot on a worker: never kept as a spare, given back by its own message. Its
    `preempted` event is set if the coordinator says an interactive request entered while it is `prefilling`."""

    __slots__ = ("_gate", "_id", "_released", "preempted", "prefilling")

    def __init__(self, gate: SharedGate, request: int) -> None:
        self._gate = gate
        self._id = request  # the id of its `enter_background`, by which the coordinator names it
        self._released = False
        self.preempted: asyncio.Event | None = asyncio.Event()
        self.prefilling = True

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gate.background.pop(self._id, None)
            self._gate.link.tell({"op": "release_background", "model": self._gate.model, "id": self._id})


class SharedGate:
    """A model's gate as one worker sees it. The coordinator holds the model's slots and its one queue; a
    worker holds slots it was granted (leases) and reuses one that a finished request left for its next
    request without a message, keeping a few spares while it is busy. When the coordinator cannot seat a
    request it says `contend`: every worker gives its spares back at once and, until `calm`, asks for every
    slot and returns each as its request ends, so the queue's order, length and wait hold as in one process.
    Counts here are this worker's own requests (the /metrics sum across workers gives the whole)."""

    def __init__(self, link: CoordinatorLink, model: str, slots: int) -> None:
        self.link = link
        self.model = model
        self.slots = slots  # across all workers
        self.held = 0  # this worker's requests holding a slot
        self.waiting = 0  # this worker's requests waiting for one at the coordinator
        self.leased = 0  # slots granted to this worker: held ones and spares
        self.contended = False
        self.background: dict[int, SharedBackgroundPass] = {}  # this worker's background requests holding a slot

    async def enter(self) -> SharedPass:
        """A slot for one request: a spare at once, else from the coordinator (at once, after waiting in the
        shared queue, or `Overloaded`)."""
        if not self.contended and self.held < self.leased:
            self.held += 1
            return SharedPass(self)
        number, answer = self.link.expect()
        self.link.tell({"op": "enter", "id": number, "model": self.model})
        self.waiting += 1
        try:
            # Shielded: if the client leaves, the answer still arrives and a late slot is not lost.
            message = await asyncio.shield(answer)
        except BaseException:
            self.link.tell({"op": "cancel", "id": number})
            answer.add_done_callback(self._late)
            raise
        finally:
            self.waiting -= 1
        if "overloaded" in message:
            raise Overloaded("Overloaded", retry_after=message["overloaded"] or _RETRY_AFTER)
        self.leased += 1
        self.held += 1
        return SharedPass(self)

    def settle(self) -> None:
        """Give back the slots beyond what this worker keeps: a quarter of its busy ones, plus one, as spares
        for its next requests while it is busy and nobody waits elsewhere; none once it is idle."""
        keep = self.held // 4 + 1 if self.held and not self.contended else 0
        spare = self.leased - self.held - keep
        if spare > 0:
            self.leased -= spare
            self.link.tell({"op": "release", "model": self.model, "n": spare})

    def contend(self) -> None:
        """The coordinator has a request it cannot seat: spares go back now, every slot goes through it."""
        self.contended = True
        self.settle()

    def calm(self) -> None:
        self.contended = False

    def _late(self, answer: asyncio.Future[Message]) -> None:
        # A slot granted just as its request left (the cancel crossed the answer): a spare now.
        if answer.cancelled() or answer.exception() is not None:
            return
        if "overloaded" not in answer.result() and "cancelled" not in answer.result():
            self.leased += 1
            self.settle()

    async def enter_background(self) -> SharedBackgroundPass:
        """A slot for background work, once no interactive request has held or waited for one of this model's
        slots, on any worker, for the coordinator's quiet period (it waits as long as it takes; cancel it to
        give up). `Overloaded` only if the coordinator is gone."""
        number, answer = self.link.expect()
        self.link.tell({"op": "enter_background", "id": number, "model": self.model})
        try:
            message = await asyncio.shield(answer)  # as in `enter`: a slot granted as we give up is not lost
        except BaseException:
            self.link.tell({"op": "cancel", "id": number})
            answer.add_done_callback(functools.partial(self._late_background, number))
            raise
        if "overloaded" in message:
            raise Overloaded("Overloaded", retry_after=message["overloaded"] or _RETRY_AFTER)
        admitted = self.background[number] = SharedBackgroundPass(self, number)
        return admitted

    def preempt(self, request: int) -> None:
        """An interactive request entered: the background request `request` stops if still in its prompt."""
        admitted = self.background.get(request)
        if admitted is not None and admitted.prefilling and admitted.preempted is not None:
            admitted.preempted.set()

    def _late_background(self, request: int, answer: asyncio.Future[Message]) -> None:
        # Granted just as its request gave up: give it straight back.
        if answer.cancelled() or answer.exception() is not None:
            return
        if "overloaded" not in answer.result() and "cancelled" not in answer.result():
            self.link.tell({"op": "release_background", "model": self.model, "id": request})


class SharedAdmission:
    """Admission through the coordinator: `max_in_flight` and the queue are per model, not per worker."""

    def __init__(self, link: CoordinatorLink, slots: dict[str, int]) -> None:
        self._gates = {model: SharedGate(link, model, count) for model, count in slots.items()}
        link.gates = self._gates

    def gate(self, model_id: str) -> SharedGate:
        return self._gates[model_id]

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per model: this worker's (requests holding a slot, background ones included; requests waiting)."""
        return {model: (gate.held + len(gate.background), gate.waiting) for model, gate in self._gates.items()}


class SharedAffinity:
    """One model's conversation -> replica table, kept by the coordinator."""

    def __init__(self, link: CoordinatorLink, model: str) -> None:
        self._link = link
        self._model = model

    async def home(self, key: str) -> str | None:
        try:
            answer = await self._link.ask({"op": "home", "model": self._model, "key": key})
        except Overloaded:
            return None  # the parent is gone; any replica will do for the last requests
        home: str | None = answer["home"]
        return home

    def bind(self, key: str, replica: str) -> None:
        self._link.tell({"op": "bind", "model": self._model, "key": key, "replica": replica})
