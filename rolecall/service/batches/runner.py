"""The batch runner: each instance's one loop that takes batch requests from the store and runs them.

- **Claims with a lease.** An item is taken by one conditional UPDATE (store/batches.py) and held for `lease`
  seconds, renewed every third of that while it runs. Its result is stored only while the lease is still this
  runner's, in one transaction with its ledger row. After `kill -9`, the items the dead process held pass on
  once their lease lapses (`batch_lease`, 15 s by default): every item ends with exactly one result, one ledger
  row, and with several instances on one PostgreSQL none is completed twice.
- **Low priority.** At most `batch_concurrency` items at once; each enters its model's admission gate only after
  0.5 s without interactive requests, and gives way (`Preempted`, then runs again) to an interactive request
  that arrives while its prompt is still being processed (service/admission.py).
- **Cancel and expiry.** Canceling turns pending items `canceled` at once (the desk); items running finish.
  A sweep every half lease ends what no runner will: expired batches' items, and those of canceling batches
  whose runner died.
- **Idle is nearly free.** While no batch is open anywhere, a look at the store (once a second, and at once when
  this instance creates or cancels a batch) is one read of the open batches' index, on SQLite right on the event
  loop: no claim, sweep or count. Another instance's new batch is seen at the next look, within `POLL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from rolecall.core.batches import ResultType
from rolecall.service.batches.desk import BatchDesk
from rolecall.service.batches.item import Callers, encoded, run_item
from rolecall.service.runtime import Runtime
from rolecall.store.batches import ClaimedItem, ItemKey

log = logging.getLogger("rolecall.batches")

# Seconds between looks at the store for work when idle: another instance's new batch starts within about this.
# While no batch is open anywhere a look is one cheap read (`BatchStore.any_open`), not a claim.
POLL = 1.0


class BatchRunner:
    """Started in the app's lifespan where there is a store; `close` gives back what it holds."""

    def __init__(self, runtime: Runtime, desk: BatchDesk, callers: Callers, concurrency: int, lease: float) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # unique per start
        self._runtime = runtime
        self._store = desk.store
        self._callers = callers
        self._concurrency = concurrency
        self._lease = lease
        self._held: dict[ItemKey, asyncio.Task[None]] = {}
        self._finishing: set[ItemKey] = set()  # storing their result: no longer to cancel
        self._wake = asyncio.Event()
        self._next_sweep = self._next_count = 0.0  # time.time() of the next sweep, the next pending count
        self._loops: list[asyncio.Task[None]] = []
        desk.on_change = self._wake.set

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._work(), name="batch-runner"), loop.create_task(self._renew())]

    async def close(self) -> None:
        """Stop taking work; the items running are stopped and given back (pending again, for any runner)."""
        held = dict(self._held)
        for task in (*self._loops, *held.values()):
            task.cancel()
        await asyncio.gather(*self._loops, *held.values(), return_exceptions=True)
        for key in held:  # those whose result was stored are no longer this runner's: unchanged
            with contextlib.suppress(Exception):  # unreachable store: the lease lapses instead
                await self._store.release(self.name, key)

    async def _work(self) -> None:
        failing = False
        while True:
            self._wake.clear()  # before looking: a batch created while the store answers still wakes the next wait
            claimed: list[ClaimedItem] = []
            try:
                claimed = await self._look()
                if failing:
                    log.info("batches: the store answers again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("batches: cannot reach the store (%s); retrying", exc)
                failing = True
            if claimed and len(self._held) < self._concurrency:
                continue  # there may be more to take at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)

    async def _look(self) -> list[ClaimedItem]:
        """One look at the store: sweep when due, claim what there is room for, count what is pending. With
        nothing held here and no batch open anywhere there is nothing to claim, sweep or count, and one cheap
        read (`any_open`) says so: an idle server makes no claim query."""
        if not self._held and not await self._store.any_open():
            self._runtime.metrics.batch_pending.set(0)
            return []
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self._lease / 2
            for batch_id in await self._store.sweep(now):
                await self._log_end(batch_id)
        claimed: list[ClaimedItem] = []
        free = self._concurrency - len(self._held)
        if free > 0 and not self._runtime.drain.begun:  # shutting down: take nothing new
            claimed = await self._store.claim(self.name, now, self._lease, free)
        for item in claimed:
            self._held[item.key] = asyncio.get_running_loop().create_task(self._run(item))
        if now >= self._next_count:
            self._next_count = now + POLL
            self._runtime.metrics.batch_pending.set(await self._store.pending_count())
        return claimed

    async def _run(self, item: ClaimedItem) -> None:
        key = item.key
        try:
            outcome = await run_item(self._runtime, self._callers, item.owner, item.params, lambda: self._canceled(key))
            self._finishing.add(key)
            ledger = self._runtime.store.ledger if self._runtime.store is not None else None
            row = ledger.take(outcome.record, 200) if ledger is not None and outcome.record is not None else None
            done = await self._store.finish(self.name, key, outcome.state, encoded(outcome.body), row, time.time())
            if done == "lost":
                log.warning("batch %s request %s: another runner took it over; this result is dropped", *_name(item))
            else:
                self._count(outcome.state)
            if done == "ended":
                await self._log_end(key.batch_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store failed: the lease lapses and the item runs again
            log.exception("batch %s request %s: could not store its result", *_name(item))
        finally:
            self._held.pop(key, None)
            self._finishing.discard(key)
            self._wake.set()

    async def _canceled(self, key: ItemKey) -> bool:
        record = await self._store.get(key.batch_id)
        return record is None or record.status != "in_progress"

    def _count(self, state: ResultType) -> None:
        self._runtime.metrics.batch_items.labels(state).inc()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            keys = [key for key in self._held if key not in self._finishing]
            if not keys:
                continue
            try:
                held = await self._store.renew(self.name, keys, time.time() + self._lease)
            except Exception as exc:  # the next round tries again; a lease may lapse meanwhile
                log.warning("batches: could not renew leases (%s)", exc)
                continue
            for key in keys:
                task = self._held.get(key)
                if key not in held and task is not None and key not in self._finishing:
                    log.warning("batch %s request %d: lease lost; stopping it", key.batch_id, key.position)
                    task.cancel()  # another runner has it: do not run it twice

    async def _log_end(self, batch_id: str) -> None:
        record = await self._store.get(batch_id)
        if record is None or record.ended_at is None:
            return
        counts = record.counts
        log.info(
            "batch %s ended after %.1f s: %d succeeded, %d errored, %d canceled, %d expired",
            batch_id,
            record.ended_at - record.created_at,
            counts.succeeded,
            counts.errored,
            counts.canceled,
            counts.expired,
        )


def _name(item: ClaimedItem) -> tuple[str, str]:
    return item.key.batch_id, item.custom_id
