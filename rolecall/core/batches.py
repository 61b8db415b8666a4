"""Message Batches in neutral terms: what the store keeps and the door shows, with no wire shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

BatchStatus = Literal["in_progress", "canceling", "ended"]
ResultType = Literal["succeeded", "errored", "canceled", "expired"]


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """Anthropic's `request_counts`: everything not yet ended is `processing`."""

    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch as the door shows it."""

    id: str  # "msgbatch_" + 24 base62, chosen by the door
    owner: str  # Caller.label of the key that created it
    status: BatchStatus
    counts: BatchCounts
    created_at: float  # UTC epoch seconds; the door formats RFC 3339
    expires_at: float  # created_at + 24 h
    ended_at: float | None
    cancel_initiated_at: float | None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a create call, already validated by the door."""

    custom_id: str
    params: dict[str, Any]  # the Messages body exactly as the client sent it


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One line of a batch's results."""

    custom_id: str
    type: ResultType
    # succeeded: the Message dict; errored: {"type": "error", "error": {...}, "request_id": ...}; else None
    body: dict[str, Any] | None
