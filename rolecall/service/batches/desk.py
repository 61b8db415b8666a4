"""The batches' facade for the door and the CLI: create, read, list, cancel, delete, and read the results of
the batches one owner (a `Caller`) may see. The operator (`caller=None`) sees every owner's. A batch of another
owner is `NotFound`, exactly like a missing id: a key learns nothing of other keys' batches."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import cast

import orjson

from rolecall.core.batches import BatchItem, BatchRecord, BatchResult, ResultType
from rolecall.core.caller import Caller
from rolecall.core.errors import InvalidRequest, NotFound
from rolecall.store.batches import BatchStore, clock
from rolecall.store.database import Database

log = logging.getLogger("rolecall.batches")

BATCH_TTL = 24 * 3600.0  # seconds from creation until the items not yet ended expire (Anthropic's 24 h)
RESULTS_PAGE = 500  # items read from the store at once while streaming the results


class BatchDesk:
    """Every batch operation the door and the CLI make. `on_change` (set by the runner) is told of each new or
    canceled batch, so work starts without waiting for the runner's next look at the store."""

    def __init__(self, store: BatchStore, now: Callable[[], float] = clock) -> None:
        self.store = store
        self._now = now
        self.on_change: Callable[[], None] = lambda: None

    @classmethod
    def on(cls, database: Database) -> BatchDesk:
        """A desk over an opened store (`rolecall batches` opens one with `service.runtime.open_store`)."""
        return cls(BatchStore(database))

    async def create(self, caller: Caller, batch_id: str, items: Sequence[BatchItem]) -> BatchRecord:
        """Store a batch the door has validated (all its items, in one transaction); it runs from now on."""
        stored = [(item.custom_id, orjson.dumps(item.params).decode()) for item in items]
        record = await self.store.create(batch_id, caller.label, stored, self._now(), BATCH_TTL)
        log.info("batch %s created by %s: %d requests", batch_id, caller.label, len(items))
        self.on_change()
        return record

    async def get(self, caller: Caller | None, batch_id: str) -> BatchRecord:
        """The batch as it stands, or `NotFound`."""
        record = await self.store.get(batch_id)
        if record is None or (caller is not None and record.owner != caller.label):
            raise NotFound(f"message batch {batch_id} not found; list yours with GET /v1/messages/batches")
        return record

    async def page(
        self, caller: Caller | None, *, limit: int, before_id: str | None, after_id: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """One page of the caller's batches, newest first (`after_id`: older than it; `before_id`: newer), and
        whether more lie beyond it in that direction."""
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit: Input should be between 1 and 1000")
        before = await self._cursor(caller, before_id, "before_id")
        after = await self._cursor(caller, after_id, "after_id")
        return await self.store.page(caller.label if caller is not None else None, limit, before, after)

    async def _cursor(self, caller: Caller | None, batch_id: str | None, field: str) -> BatchRecord | None:
        if batch_id is None:
            return None
        try:
            return await self.get(caller, batch_id)
        except NotFound:
            raise InvalidRequest(
                f"{field}: no message batch with id '{batch_id}'; use an id from a list page"
            ) from None

    async def cancel(self, caller: Caller | None, batch_id: str) -> BatchRecord:
        """Begin canceling: `canceling` until the items running now end; those not started end `canceled` at
        once. A batch already canceling or ended is returned as it is."""
        await self.get(caller, batch_id)
        record = await self.store.cancel(batch_id, self._now())
        if record is None:  # deleted in between
            raise NotFound(f"message batch {batch_id} not found; list yours with GET /v1/messages/batches")
        self.on_change()
        return record

    async def delete(self, caller: Caller | None, batch_id: str) -> None:
        """Remove an ended batch and its results."""
        record = await self.get(caller, batch_id)
        if record.status != "ended" or not await self.store.delete(batch_id):
            raise InvalidRequest(
                f"message batch {batch_id} is still {record.status}; cancel it and delete it once it has ended"
            )

    def results(self, caller: Caller | None, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every item's result in submission order, read from the store a page at a time. The checks (`NotFound`,
        `InvalidRequest` unless ended) run at the first `anext`: pull the first result before committing to a
        response (a batch has at least one item)."""
        return self._results(caller, batch_id)

    async def _results(self, caller: Caller | None, batch_id: str) -> AsyncIterator[BatchResult]:
        record = await self.get(caller, batch_id)
        if record.status != "ended":
            raise InvalidRequest(
                f"message batch {batch_id} is still {record.status}; results are available once it has ended"
            )
        after = -1
        while page := await self.store.results(batch_id, after, RESULTS_PAGE):
            for item in page:
                body = orjson.loads(item.result) if item.result is not None else None
                yield BatchResult(item.custom_id, cast(ResultType, item.state), body)
            after = page[-1].position
