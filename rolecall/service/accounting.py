"""Every request to a door leaves one ledger row. A `RequestRecord` follows the request (the app opens it,
authentication names the key, the generation adds what it produced) and is written once:

- a generation that finishes commits its row BEFORE the response's last bytes go out (the Finished event
  waits for the group commit), so a client that got a complete response finds it in the ledger even if
  rolecall is killed right after;
- anything else (errors before generation, a request cut short) is written when the request ends, with what
  it generated and its status."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from rolecall.core.usage import Usage
from rolecall.service.metrics import Metrics
from rolecall.store.ledger import LedgerRow, LedgerWriter

log = logging.getLogger("rolecall.ledger")

# How long a response's end waits for its row's commit: a stuck database must not hang every response (the
# row stays queued and is written when the database answers).
COMMIT_WAIT = 10.0

CLIENT_GONE = 499  # nginx's "client closed request": the client left before its answer was complete


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    door: str
    at: float = field(default_factory=time.time)
    began: float = field(default_factory=time.perf_counter)
    key: str | None = None
    model_asked: str | None = None
    model_served: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    failed_with: int | None = None  # the status of an error that ended it, whatever HTTP status was sent
    written: bool = False

    def add(self, usage: Usage) -> None:
        """Count one generation's tokens (a request with n choices adds n)."""
        self.input_tokens += usage.uncached_tokens
        self.cached_tokens += usage.cached_tokens
        self.output_tokens += usage.output_tokens

    def failed(self, status: int) -> None:
        """The first error that ended the request sets its status."""
        if self.failed_with is None:
            self.failed_with = status

    def row(self, status: int) -> LedgerRow:
        return LedgerRow(
            at=self.at,
            request_id=self.request_id,
            key=self.key,
            door=self.door,
            model_asked=self.model_asked,
            model_served=self.model_served,
            input_tokens=self.input_tokens,
            cached_tokens=self.cached_tokens,
            output_tokens=self.output_tokens,
            stop_reason=self.stop_reason,
            status=self.failed_with or status,
            latency_ms=round((time.perf_counter() - self.began) * 1000, 3),
        )


class Ledger:
    """Writes the records (through the store's group-commit writer) and counts them per key for Prometheus."""

    def __init__(self, writer: LedgerWriter, metrics: Metrics) -> None:
        self._writer = writer
        self._metrics = metrics

    async def commit(self, record: RequestRecord, status: int = 200) -> None:
        """Write the record and wait until it is durable (a failing database is logged, not raised: the
        response still completes)."""
        row = self._take(record, status)
        if row is None:
            return
        try:
            await asyncio.wait_for(self._writer.write(row), COMMIT_WAIT)
        except TimeoutError:
            log.warning(
                "ledger: the database took over %.0f s to commit; request %s answered before its row is durable",
                COMMIT_WAIT,
                row.request_id,
            )
        except Exception as exc:  # the writer logged it
            log.debug("ledger row %s lost: %s", row.request_id, exc)

    def close_record(self, record: RequestRecord, status: int) -> None:
        """Write the record of a request that ended without committing it; nobody waits for it."""
        row = self._take(record, status)
        if row is not None:
            try:
                self._writer.submit(row)
            except RuntimeError as exc:  # shutting down
                log.error("ledger row %s lost: %s", row.request_id, exc)

    def take(self, record: RequestRecord, status: int) -> LedgerRow | None:
        """The record's row, counted for Prometheus, for a caller that writes it itself (a batch request's row
        goes into the store with its result); None if it was written already."""
        return self._take(record, status)

    def _take(self, record: RequestRecord, status: int) -> LedgerRow | None:
        if record.written:
            return None
        record.written = True
        row = record.row(status)
        self._metrics.record_key(row.key, row.status, row.input_tokens, row.cached_tokens, row.output_tokens)
        return row
