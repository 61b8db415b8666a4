"""One generation end to end, for every door: an admission slot, the engine stream opened (failures in
the early window still get their HTTP status), engine chunks parsed into neutral output events, and at
the end the engine stream closed, the slot given back and the usage recorded, however it ended.

A door shapes its request (`prepare`), calls `start`, and encodes the events: SSE, chunks, or the fold
of them into one JSON body. `start_choices` runs n generations of one prompt (OpenAI's `n`).

    call = await prepare(runtime, body.model, shape)
    async with await start(runtime, caller, call) as generation:
        async for events in generation.events(): ...  # one list per read of the engine's output
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from rolecall.core.caller import Caller
from rolecall.core.chunks import EngineBatch, PrefillChunk
from rolecall.core.errors import Overloaded, RolecallError
from rolecall.core.events import Finished, OutputEvent, Started
from rolecall.service.accounting import CLIENT_GONE, RequestRecord
from rolecall.service.admission import Preempted, Slot
from rolecall.service.limits import Ticket
from rolecall.service.prepare import PreparedCall
from rolecall.service.runtime import Runtime
from rolecall.service.turn import TurnInProgress

# How long a new generation may take to fail before a stream commits to 200: failures of the engine
# call itself (every replica overloaded or down) come back within it as HTTP errors (529, 503...),
# while a long prefill does not hold the response headers back.
EARLY_FAILURE_WINDOW = 1.0
T = TypeVar("T")


@dataclass(slots=True)
class _OpenedStream:
    """An engine stream that has started; `first` is the pending (or done) read of its first batch of output,
    `prefill` the prompt's cached part once the engine has told it (it comes before any output)."""

    batches: AsyncIterator[EngineBatch]
    first: asyncio.Future[EngineBatch | None]
    prefill: PrefillChunk | None = None
    closed: bool = False

    def take_prefill(self) -> PrefillChunk | None:
        """If the first chunk to arrive is the prompt's cached part, keep it aside: the output read on from
        there (the rest of its batch, else the next read)."""
        first = self.first
        if self.prefill is None and first.done() and not first.cancelled() and first.exception() is None:
            batch = first.result()
            if batch and isinstance(batch[0], PrefillChunk):
                self.prefill = batch[0]
                if len(batch) > 1:
                    self.first = asyncio.get_running_loop().create_future()
                    self.first.set_result(batch[1:])
                else:
                    self.first = asyncio.ensure_future(anext(self.batches, None))
        return self.prefill

    def has_output(self) -> bool:
        """The first batch of output has arrived (not an error, not the end of the stream)."""
        first = self.first
        return first.done() and not first.cancelled() and first.exception() is None and first.result() is not None

    async def close(self) -> None:
        """End the engine stream (which cancels the generation); safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        if not self.first.done():
            self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first  # a read in flight must end before the stream can be closed
        await self.batches.aclose()  # type: ignore[attr-defined]


async def _open(call: PreparedCall, window: float) -> _OpenedStream:
    """Start generating; an engine failure within `window` seconds is raised here, before any event."""
    batches = call.model.engine.generate(call.generation)
    opened = _OpenedStream(batches, asyncio.ensure_future(anext(batches, None)))
    deadline = asyncio.get_running_loop().time() + window
    try:
        await asyncio.wait({opened.first}, timeout=window)
        if opened.take_prefill() is not None:  # not output yet: the window is for the first output's failures
            await asyncio.wait({opened.first}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        if opened.first.done() and opened.first.exception() is not None:
            raise opened.first.exception()  # type: ignore[misc]
    except BaseException:
        await opened.close()
        raise
    return opened


class Generation:
    """One admitted, started generation. Iterate `events()` once; `close()` (or leaving `async with`) ends
    the engine stream, gives the admission slot back and records the usage. `close` is idempotent."""

    def __init__(
        self,
        runtime: Runtime,
        caller: Caller,
        call: PreparedCall,
        ticket: Ticket,
        admitted: Slot,
        opened: _OpenedStream,
        record: RequestRecord | None = None,
        commits: bool = True,
    ):
        self.caller = caller
        self.call = call
        self.ticket = ticket  # `ticket.headers`: the key's rate-limit standing, for the response
        self._runtime = runtime
        self._admitted = admitted
        self._opened = opened
        self._turn: TurnInProgress | None = None
        self._closed = False
        # The request's ledger record: this generation adds its usage; `commits` (False for one of n
        # choices, whose `Choices` commits) makes it commit the row before its Finished event goes out.
        self._record = record
        self._commits = commits
        self._counted = False
        self._settled = False

    def events(self, hold_started: float | None = None) -> AsyncGenerator[list[OutputEvent], None]:
        """Started, the content blocks, Finished, as one list of events per read of the engine's output;
        ended by `Overloaded` if a shutdown's grace period runs out.

        Started waits for the engine's first chunk, which tells (where the engine can) how much of the prompt
        was cached; `hold_started` bounds that wait in seconds (a stream's keep-alive interval), None: no bound.
        It comes in one list with the first output if that has arrived by then."""
        return self.each_read(_as_is, hold_started)

    async def each_read(
        self, handle: Callable[[list[OutputEvent]], T | None], hold_started: float | None = None
    ) -> AsyncGenerator[T, None]:
        """What `handle` makes of each list of `events()`, passed on unless it is empty or None: a door's frames
        or its fold are made in this generator's own loop, which spares a generator around it (resumed once per
        read of the engine's output, so once per token at an engine's pace)."""
        with self._runtime.drain.guarding():  # a shutdown's grace period ends it with Overloaded
            call, opened = self.call, self._opened
            turn = self._turn = TurnInProgress(call, self._runtime.signer, self._runtime.metrics)
            try:
                if opened.prefill is None and not opened.first.done():
                    await self._until_first(opened.first, hold_started)
                prefill = opened.take_prefill()
                if prefill is not None:
                    turn.on_chunk(prefill)  # the prompt's cached part (and size): no output of its own
                    if self._admitted.preempted is not None:
                        self._admitted.prefilling = False  # the prompt is processed: nothing left to save
                if not turn.prompt_known:  # the stream did not tell it in time: count it after all
                    turn.count_prompt(await call.model.engine.count_tokens(call.generation))
                events: list[OutputEvent] = [Started(turn.prompt_usage())]
                if not opened.has_output():
                    # The first output is not there yet (or it failed): Started goes out on its own.
                    if out := handle(events):
                        yield out
                    events = []
                batch = await self._first_batch()
                read = opened.batches.__anext__
                while batch is not None:
                    events += turn.on_chunks(batch)
                    if events:
                        if out := handle(events):
                            yield out
                        events = []
                    if turn.ended_early:
                        break  # closing the engine stream cancels the generation
                    try:
                        batch = await read()
                    except StopAsyncIteration:
                        batch = None
            except RolecallError as exc:
                self._note_failure(exc.status)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                self._note_failure(CLIENT_GONE)
                raise
            finally:
                await opened.close()
            events += turn.finish()
            events.append(await self._finished(turn))
            if out := handle(events):
                yield out

    async def _finished(self, turn: TurnInProgress) -> Finished:
        """The Finished event, once what it reports is durable: before the response's last bytes, both at once,
        the ledger row is committed and the key's counters hold this generation's tokens and have its lease
        back (a client's next request finds them so)."""
        finished = Finished(turn.finish_reason(), turn.stops.matched, turn.usage())
        self._count()
        ending: list[Awaitable[None]] = [self._settle()] if self.ticket.counts else []
        if self._commits and self._record is not None and self._runtime.store is not None:
            ending.append(self._runtime.store.ledger.commit(self._record))
        if len(ending) == 1:
            await ending[0]  # no task to spawn on the common path
        elif ending:
            await asyncio.gather(*ending)
        return finished

    async def _first_batch(self) -> EngineBatch | None:
        """The engine's first batch of output. A background request whose slot may be preempted waits for it
        watching the preemption (and stops with `Preempted`); once output has begun it is no longer worth
        stopping."""
        admitted, first = self._admitted, self._opened.first
        if admitted.preempted is None:
            return await first
        await self._until_first(first, None)
        batch = await first
        admitted.prefilling = False
        return batch

    async def _until_first(self, first: asyncio.Future[EngineBatch | None], timeout: float | None) -> None:
        """Wait for the engine's first chunk (at most `timeout` seconds). A background request whose slot is
        preempted meanwhile (an interactive request entered while its prompt was being processed) stops here
        with `Preempted`: closing its engine stream ends the prompt's processing at the next step."""
        preempted = self._admitted.preempted
        if preempted is None:
            await asyncio.wait({first}, timeout=timeout)
            return
        stop = asyncio.ensure_future(preempted.wait())
        either: set[asyncio.Future[Any]] = {first, stop}
        try:
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if preempted.is_set() and not first.done():
            raise Preempted("a batch request gave way to an interactive one; it runs again", retry_after=0)

    def _count(self) -> None:
        """Add this generation's usage to the request's record, once."""
        if self._counted or self._turn is None:
            return
        self._counted = True
        if self._record is not None:
            self._record.add(self._turn.usage())
            self._record.stop_reason = self._turn.finish_reason()

    async def _settle(self) -> None:
        """Hand this generation's tokens (input + output, as served) to the caller's limits, once."""
        if self._settled or not self.ticket.counts:
            return
        self._settled = True
        usage = self._turn.usage() if self._turn is not None else None
        await _shielded(self.ticket.finish(usage.prompt_tokens + usage.output_tokens if usage is not None else 0))

    def _note_failure(self, status: int) -> None:
        if self._record is not None:
            self._record.failed(status)

    async def close(self) -> None:
        """End the engine stream before its slot is given back; what was generated still counts."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._opened.close()
        finally:
            self._admitted.release()
            if self._turn is not None:
                self._runtime.metrics.record_usage(self.call.model.id, self._turn.usage())
                self._count()  # cut short: what it generated still counts
            await self._settle()

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def start(
    runtime: Runtime,
    caller: Caller,
    call: PreparedCall,
    *,
    window: float = EARLY_FAILURE_WINDOW,
    record: RequestRecord | None = None,
    commits: bool = True,
    background: bool = False,
) -> Generation:
    """Admit the request under the caller's limits (403, 429), wait for an admission slot (529 `Overloaded`
    when the queue is full or too slow), then open the engine stream. Cancelling this (the client left)
    gives back whatever was taken. `record` is the request's ledger record (None: not recorded).
    `background` (a batch's request): the slot is taken only while no interactive request wants one, and its
    failures come as events (no response head to hold back), `Preempted` among them."""
    _name_models(record, call)
    ticket = await runtime.limiter.admit(caller, call.requested_model, call.model)
    try:
        return await _start(runtime, caller, call, ticket, 0.0 if background else window, record, commits, background)
    except BaseException:
        if ticket.counts:
            await _shielded(ticket.finish(0))
        raise


def _name_models(record: RequestRecord | None, call: PreparedCall) -> None:
    if record is not None:
        record.model_asked = call.requested_model
        record.model_served = call.model.id


async def _start(
    runtime: Runtime,
    caller: Caller,
    call: PreparedCall,
    ticket: Ticket,
    window: float,
    record: RequestRecord | None,
    commits: bool,
    background: bool = False,
) -> Generation:
    gate = runtime.admission.gate(call.model.id)
    try:
        admitted: Slot = await (gate.enter_background() if background else gate.enter())
    except Overloaded:
        runtime.metrics.shed.labels(call.model.id).inc()
        raise
    try:
        opened = await _open(call, window)
    except BaseException:
        admitted.release()
        raise
    return Generation(runtime, caller, call, ticket, admitted, opened, record, commits)


def _as_is(events: list[OutputEvent]) -> list[OutputEvent]:
    return events


async def _shielded(work: Awaitable[None]) -> None:
    # Giving a lease back must not be cut short by the cancellation that ends the request.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(work)


async def start_choices(
    runtime: Runtime, caller: Caller, call: PreparedCall, n: int, record: RequestRecord | None = None
) -> Choices:
    """`n` generations of one prompt, each with its own slot; all start or none does. They are one request
    under the caller's limits and share the request's one ledger record (a single choice commits it itself)."""
    _name_models(record, call)
    ticket = (await runtime.limiter.admit(caller, call.requested_model, call.model)).share(n)
    started: list[Generation] = []
    try:
        for _ in range(n):
            started.append(await _start(runtime, caller, call, ticket, EARLY_FAILURE_WINDOW, record, n == 1))
    except BaseException:
        for generation in started:
            await generation.close()
        for _ in range(n - len(started) if ticket.counts else 0):
            await _shielded(ticket.finish(0))
        raise
    return Choices(started, runtime, record)


class Choices:
    """Several generations of one prompt; `events()` interleaves them as `(choice index, events)` in the
    order they arrive. `close()` (or leaving `async with`) closes them all."""

    def __init__(
        self, generations: list[Generation], runtime: Runtime | None = None, record: RequestRecord | None = None
    ) -> None:
        self.generations = generations
        self._runtime = runtime
        self._record = record

    async def events(self, hold_started: float | None = None) -> AsyncGenerator[tuple[int, list[OutputEvent]], None]:
        """Every choice's events as `(index, events of one read)`; `hold_started` as in `Generation.events`."""
        # One task per choice reads its stream to the end (the shutdown drain cancels that task), and a
        # queue hands the events over in arrival order; a failure in any choice ends them all.
        queue: asyncio.Queue[tuple[int, list[OutputEvent] | BaseException | None]] = asyncio.Queue()

        async def pump(i: int, generation: Generation) -> None:
            try:
                async with contextlib.aclosing(generation.events(hold_started)) as batches:
                    async for events in batches:
                        await queue.put((i, events))
            except Exception as exc:
                await queue.put((i, exc))
            else:
                await queue.put((i, None))

        pumps = [asyncio.create_task(pump(i, generation)) for i, generation in enumerate(self.generations)]
        running = unfinished = len(pumps)
        try:
            while running:
                i, item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    if isinstance(item[-1], Finished):  # Finished ends a choice's last list
                        unfinished -= 1
                        if not unfinished:
                            await self._commit()  # every choice counted: durable before the last one's end
                    yield i, item
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _commit(self) -> None:
        runtime = self._runtime
        if len(self.generations) > 1 and self._record is not None and runtime is not None and runtime.store:
            await runtime.store.ledger.commit(self._record)

    async def close(self) -> None:
        for generation in self.generations:
            await generation.close()

    async def __aenter__(self) -> Choices:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
