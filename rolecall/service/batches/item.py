"""One request of a batch, run as `POST /v1/messages` with `stream` false runs (the same function, the same
pipeline), as its owner's request: admitted under the owner's limits as they are now, at low priority."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from rolecall.core.batches import ResultType
from rolecall.core.caller import Caller
from rolecall.core.errors import InternalError, Overloaded, QuotaExceeded, RateLimited, RolecallError
from rolecall.protocol.anthropic.errors import error_envelope
from rolecall.protocol.anthropic.limits import RequestCaps, check_caps
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.protocol.ids import new_id
from rolecall.service.accounting import RequestRecord
from rolecall.service.anthropic import message_body
from rolecall.service.runtime import Runtime

log = logging.getLogger("rolecall.batches")

# Who a batch's owner (its `Caller.label`) is now; raises `InvalidCredentials` when the key is gone or refused.
Callers = Callable[[str], Caller]


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    state: ResultType
    body: dict[str, Any] | None  # the Message, the error body, or None (canceled)
    record: RequestRecord | None  # its ledger record; None when it never ran


async def run_item(
    runtime: Runtime, callers: Callers, owner: str, params: str, canceled: Callable[[], Awaitable[bool]]
) -> ItemOutcome:
    """Run one batch request to its result. A key over its rate or token limits, or an engine that sheds load,
    makes it wait and try again (batch work never fails for being early); `canceled` is asked before each new
    try. Any other failure is the item's `errored` result, never the runner's."""
    record = RequestRecord(new_id("req_"), "anthropic")
    record.key = owner
    try:
        body = parse_body(MessagesRequest, params.encode())
        record.model_asked = body.model
        settings = runtime.settings
        check_caps(body, RequestCaps(settings.max_messages, settings.max_tools, settings.max_block_chars))
        while True:
            caller = callers(owner)  # each try: a key revoked meanwhile ends it, changed limits apply
            try:
                message = await message_body(runtime, caller, body, frozenset(), record, background=True)
                break
            except (RateLimited, Overloaded) as exc:
                if isinstance(exc, QuotaExceeded) and exc.retry_after is None:
                    raise  # a quota without a window never comes back
                record.failed_with = None  # what a try generated still counts; its status is not the result's
                await asyncio.sleep(exc.retry_after or 1.0)
                if await canceled():
                    return ItemOutcome("canceled", None, None)
    except RolecallError as exc:
        record.failed(exc.status)
        return ItemOutcome("errored", error_envelope(exc, record.request_id), record)
    except Exception:
        log.exception("batch request %s failed unexpectedly", record.request_id)
        error = InternalError("the batch request failed inside rolecall; its log has the details")
        record.failed(error.status)
        return ItemOutcome("errored", error_envelope(error, record.request_id), record)
    message["usage"]["service_tier"] = "batch"  # as Anthropic marks batch usage
    return ItemOutcome("succeeded", message, record)


def encoded(body: dict[str, Any] | None) -> str | None:
    """A result as the store keeps it."""
    return None if body is None else orjson.dumps(body).decode()
