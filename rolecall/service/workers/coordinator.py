"""The parent's coordinator: the one view the workers share, served on a Unix socket in a private directory.

- Admission: one `ModelGate` per model (its slots, queue length and queue wait hold across all workers).
  A slot granted to a worker is its lease: it may keep it for its next request (link.SharedGate says how
  many). When a request finds no free slot, the coordinator first has every worker give its spares back
  (`contend`, one round trip to each), then queues it; until the model is calm again (no queue, half its
  slots free) workers ask for every slot and return each one as its request ends.
- Background work (a message batch's requests) has its own `enter_background`: while any waits or runs for a
  model, the model stays contended, so the coordinator sees every interactive request enter and leave; it
  grants a background slot only after `quiet` seconds without interactive requests (as admission.py does in
  one process), and an interactive request that enters meanwhile has the worker of each background request
  still processing its prompt stop it (`preempt`).
  A worker that dies gives back every slot it held and drops every request it had waiting.
- Affinity: one conversation -> replica table per model, so a follow-up lands on the replica holding its
  prefix cache whichever worker takes it.
- Health: the parent alone probes the upstream replicas; each round's answers go to every worker (and the
  latest to a worker as it connects), which admits and ejects replicas by them.
- /metrics: a scrape on any worker asks every worker for its own exposition and returns the sum
  (service/workers/exposition.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rolecall.core.errors import Overloaded
from rolecall.engines.affinity import AffinityTable
from rolecall.service.admission import BACKGROUND_QUIET, ModelGate, Pass
from rolecall.service.workers.channel import Message, receive, send
from rolecall.service.workers.exposition import merge_expositions

log = logging.getLogger("rolecall.workers")

_SCRAPE_WAIT = 5.0  # seconds a scrape waits for each worker's exposition; a stuck worker is left out


class Coordinator:
    """Serves the shared view to the workers; `start` listens on `path`, `close` stops and drops every link."""

    def __init__(
        self, path: Path, on_listening: Callable[[int], None] = lambda number: None, quiet: float = BACKGROUND_QUIET
    ) -> None:
        self.path = path
        self.quiet = quiet  # seconds without interactive requests before a background request may start
        self.gates: dict[str, ModelGate] = {}
        self.affinity: dict[str, AffinityTable] = {}
        self._links: dict[int, _WorkerLink] = {}
        self._ids = itertools.count(1)
        self._on_listening = on_listening
        self._server: asyncio.Server | None = None
        self._closed = False
        self._handlers: set[asyncio.Task[Any]] = set()
        self._health: dict[str, dict[str, bool]] = {}  # model -> the latest probe round's answers
        self._contended: set[str] = set()  # models whose workers hand every slot back (see `contend`)
        self._recalls: dict[str, asyncio.Task[None]] = {}  # model -> the workers' spares on their way back
        self._background: dict[str, int] = {}  # model -> background requests waiting or holding a slot

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=2**20)
        self.path.chmod(0o600)  # the directory is private too; this is belt and braces

    async def close(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.close()
        # Let each connection's handler see its end rather than be cancelled with the loop.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1.0)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per model: (requests holding a slot, requests waiting), across all workers."""
        return {model: (gate.in_flight, gate.queued) for model, gate in self.gates.items()}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _WorkerLink(self, writer)
        if self._closed:  # connected just as the coordinator closed
            link.close()
            return
        self._links[id(link)] = link
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            while (message := await receive(reader)) is not None:
                link.handle(message)
        finally:
            del self._links[id(link)]
            self._handlers.discard(handler)  # type: ignore[arg-type]
            link.close()

    def configure(self, gates: dict[str, list[float]]) -> None:
        """The first worker to say hello sizes the gates (all workers read the same configuration)."""
        for model, (slots, queue_length, max_wait) in gates.items():
            if model not in self.gates:
                self.gates[model] = ModelGate(int(slots), int(queue_length), max_wait, self.quiet)
                self.affinity[model] = AffinityTable()

    async def scrape(self) -> str:
        """Every live worker's exposition, summed."""
        links = list(self._links.values())
        answers = await asyncio.gather(*(link.ask({"op": "expose"}) for link in links), return_exceptions=True)
        texts = [answer["text"] for answer in answers if isinstance(answer, dict)]
        return merge_expositions(texts)

    def contended(self) -> set[str]:
        """The models whose workers hand every slot back until calm."""
        return self._contended

    def recalling(self, model: str) -> bool:
        return model in self._recalls

    async def contend(self, model: str) -> None:
        """Before a request waits for `model`: every worker gives back its spare slots (once, until calm)."""
        if model not in self._contended:
            self._contended.add(model)
            self._recalls[model] = asyncio.create_task(self._recall(model))
        recall = self._recalls.get(model)
        if recall is not None:
            await asyncio.shield(recall)

    async def _recall(self, model: str) -> None:
        try:
            asks = [link.ask({"op": "contend", "model": model}) for link in self._links.values()]
            await asyncio.gather(*asks, return_exceptions=True)  # a worker that died gave its slots back anyway
        finally:
            del self._recalls[model]

    def background(self, model: str) -> int:
        """Background requests waiting for one of `model`'s slots or holding one, across all workers."""
        return self._background.get(model, 0)

    def background_began(self, model: str) -> None:
        """A background request asked for a slot: the model stays contended until it has given that slot back."""
        self._background[model] = self._background.get(model, 0) + 1

    def background_ended(self, model: str) -> None:
        """A background request gave its slot back, or stopped waiting for one."""
        left = self._background.pop(model) - 1
        if left:
            self._background[model] = left
        self.settled(model)

    def settled(self, model: str) -> None:
        """A slot came back: once nobody waits, half the slots are free and no background work waits or runs,
        workers may keep spares again."""
        gate = self.gates[model]
        calm = not gate.queued and gate.in_flight <= gate.slots // 2 and model not in self._background
        if calm and model in self._contended and model not in self._recalls and not self._closed:
            self._contended.discard(model)
            self.tell_all({"op": "calm", "model": model})

    def publish_health(self, model: str, answers: dict[str, bool]) -> None:
        """One probe round of `model`'s replicas, for every worker."""
        self._health[model] = answers
        for link in self._links.values():
            link.tell_health(model, answers)

    def latest_health(self) -> dict[str, dict[str, bool]]:
        """Per model, the latest probe round's answers (for a worker that connects between rounds)."""
        return self._health

    def tell_all(self, message: Message) -> set[int]:
        """Send `message` to every connected worker; the numbers of those it reached."""
        for link in self._links.values():
            send(link.writer, message)
        return {link.number for link in self._links.values()}

    def listening(self, number: int) -> None:
        self._on_listening(number)


class _WorkerLink:
    """One worker's connection: what it holds (slots, waiting requests) and the questions asked of it."""

    def __init__(self, coordinator: Coordinator, writer: asyncio.StreamWriter) -> None:
        self._coordinator = coordinator
        self.writer = writer
        self._leases: dict[str, list[Pass]] = {}  # model -> the slots this worker holds (busy or spare)
        # Request id -> (model, slot) of each background request this worker runs; with the task that tells the
        # worker when an interactive request preempts it.
        self._background: dict[int, tuple[str, Pass, asyncio.Task[None]]] = {}
        self._waiting: dict[int, asyncio.Task[None]] = {}
        self._asked: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.number = 0

    def handle(self, message: Message) -> None:
        op = message.get("op")
        if op is None:  # an answer to one of our questions
            future = self._asked.pop(message["re"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif op == "enter":
            self._enter(message["id"], message["model"])
        elif op == "release":
            self._give_back(message["model"], message["n"])
        elif op == "enter_background":
            self._enter_background(message["id"], message["model"])
        elif op == "release_background":
            self._end_background(message["id"])
        elif op == "cancel":
            self._cancel(message["id"])
        elif op == "home":
            table = self._coordinator.affinity.get(message["model"])
            home = table.home(message["key"]) if table is not None else None
            send(self.writer, {"re": message["id"], "home": home})
        elif op == "bind":
            table = self._coordinator.affinity.get(message["model"])
            if table is not None:
                table.bind(message["key"], message["replica"])
        elif op == "scrape":
            self._spawn(self._scrape(message["id"]))
        elif op == "hello":
            self.number = message["worker"]
            self._coordinator.configure(message["gates"])
            for model, answers in self._coordinator.latest_health().items():
                self.tell_health(model, answers)
            for model in self._coordinator.contended():  # a worker started while requests wait keeps no spares
                send(self.writer, {"op": "contend", "model": model})
        elif op == "listening":
            self._coordinator.listening(self.number)
        else:
            log.warning("coordinator: unknown message %r from worker %d", op, self.number)

    def tell_health(self, model: str, answers: dict[str, bool]) -> None:
        send(self.writer, {"op": "health", "model": model, "answers": answers})

    def _enter(self, request: int, model: str) -> None:
        coordinator = self._coordinator
        gate = coordinator.gates.get(model)
        if gate is None:  # workers size the gates before their first request; this is a bug, not load
            log.error("coordinator: worker %d asked for unknown model %r", self.number, model)
            send(self.writer, {"re": request, "overloaded": 1.0})
            return
        gate.arrive()  # background requests still in their prompt give way (seen here while they wait or run)
        if gate.in_flight < gate.slots and not gate.queued and not coordinator.recalling(model):
            gate.in_flight += 1  # the common case answers without a task
            self._grant(request, model, Pass(gate))
            return
        self._waiting[request] = asyncio.create_task(self._wait(request, model, gate))

    async def _wait(self, request: int, model: str, gate: ModelGate) -> None:
        try:
            await self._coordinator.contend(model)
            admitted = await gate.enter()
        except Overloaded as exc:
            send(self.writer, {"re": request, "overloaded": exc.retry_after})
            return
        finally:
            self._waiting.pop(request, None)
        self._grant(request, model, admitted)

    def _grant(self, request: int, model: str, lease: Pass) -> None:
        self._leases.setdefault(model, []).append(lease)
        send(self.writer, {"re": request})

    def _enter_background(self, request: int, model: str) -> None:
        gate = self._coordinator.gates.get(model)
        if gate is None:  # as in `_enter`: a bug, not load
            log.error("coordinator: worker %d asked for unknown model %r", self.number, model)
            send(self.writer, {"re": request, "overloaded": 1.0})
            return
        self._waiting[request] = asyncio.create_task(self._wait_background(request, model, gate))

    async def _wait_background(self, request: int, model: str, gate: ModelGate) -> None:
        # Contended first, so that every interactive request entering meanwhile passes through the gate.
        coordinator = self._coordinator
        coordinator.background_began(model)
        try:
            await coordinator.contend(model)
            admitted = await gate.enter_background()
        except BaseException:
            coordinator.background_ended(model)
            raise
        finally:
            self._waiting.pop(request, None)
        watch = asyncio.create_task(self._watch_preemption(request, model, admitted))
        self._background[request] = (model, admitted, watch)
        send(self.writer, {"re": request})

    async def _watch_preemption(self, request: int, model: str, admitted: Pass) -> None:
        # Only the worker knows whether the request is still processing its prompt: it stops it if so.
        if admitted.preempted is not None:
            await admitted.preempted.wait()
            send(self.writer, {"op": "preempt", "model": model, "id": request})

    def _end_background(self, request: int) -> None:
        held = self._background.pop(request, None)
        if held is not None:
            model, admitted, watch = held
            watch.cancel()
            admitted.release()
            self._coordinator.background_ended(model)

    def _give_back(self, model: str, count: int) -> None:
        leases = self._leases.get(model, [])
        for _ in range(min(count, len(leases))):
            leases.pop().release()
        if model in self._coordinator.gates:
            self._coordinator.settled(model)

    def _cancel(self, request: int) -> None:
        # The client left while its request waited: it leaves the queue. If its slot was granted already,
        # the grant is on its way and the worker takes it as a spare.
        waiting = self._waiting.pop(request, None)
        if waiting is not None:
            waiting.cancel()
            send(self.writer, {"re": request, "cancelled": True})

    async def _scrape(self, request: int) -> None:
        send(self.writer, {"re": request, "text": await self._coordinator.scrape()})

    async def ask(self, message: Message) -> Message:
        number = next(self._coordinator._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._asked[number] = future
        send(self.writer, {**message, "id": number})
        try:
            return await asyncio.wait_for(future, _SCRAPE_WAIT)
        finally:
            self._asked.pop(number, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """The worker is gone: its slots go back, its queued requests leave the queue."""
        for waiting in self._waiting.values():
            waiting.cancel()
        self._waiting.clear()
        for model, leases in self._leases.items():
            self._give_back(model, len(leases))
        for request in list(self._background):
            self._end_background(request)
        for future in self._asked.values():
            if not future.done():
                future.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
