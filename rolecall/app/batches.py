"""Message Batches, Anthropic's batch API: the routes under `/v1/messages/batches` (and `/anthropic/v1/...`).

    POST   /v1/messages/batches                 {"requests": [{"custom_id", "params"}, ...]} -> message_batch
    GET    /v1/messages/batches                 ?limit=20&before_id=&after_id= -> a page, newest first
    GET    /v1/messages/batches/{id}            -> message_batch
    POST   /v1/messages/batches/{id}/cancel     -> message_batch (canceling, or ended)
    GET    /v1/messages/batches/{id}/results    -> JSONL, one line per request, once the batch has ended
    DELETE /v1/messages/batches/{id}            -> message_batch_deleted (ended batches only)

The door validates a batch whole (protocol/anthropic/batches.py) and hands it to the service's `BatchDesk`,
which stores it and runs it behind interactive traffic. A batch belongs to the key that created it: to any
other key it does not exist (404, as a missing id)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from rolecall.app.auth import authenticated
from rolecall.app.body import read_body
from rolecall.app.responses import ClientDisconnected, JSONResponse
from rolecall.core.batches import BatchRecord, BatchResult
from rolecall.core.caller import Caller
from rolecall.core.errors import NotFound
from rolecall.protocol.anthropic.batches import (
    BATCH_ID_PREFIX,
    MAX_BATCH_BYTES,
    batch_object,
    batch_page,
    deleted,
    page_limit,
    parse_batch,
    result_line,
)
from rolecall.protocol.anthropic.limits import RequestCaps
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.ids import new_id
from rolecall.service.batches import BatchDesk
from rolecall.service.limits.limiter import check_model
from rolecall.service.runtime import Runtime

log = logging.getLogger("rolecall")
router = APIRouter()
CallerDep = Annotated[Caller, Depends(authenticated)]
PATH = "/v1/messages/batches"
RESULTS_TYPE = "application/x-jsonl"  # what api.anthropic.com sends for a results file
_CHUNK_BYTES = 1 << 16


def _desk(request: Request) -> BatchDesk:
    runtime: Runtime = request.app.state.runtime
    if runtime.batches is None:
        raise NotFound(
            "Message Batches are off on this server: they need the store (the SQLite file in data_dir, "
            "or database_url); run rolecall serve with one"
        )
    return runtime.batches


def batch_view(record: BatchRecord, base_url: str = "") -> dict:
    """The batch object with its `results_url` under `base_url` (the server's address and any prefix)."""
    return batch_object(record, f"{base_url}{PATH}/{record.id}/results")


def _shown(request: Request, record: BatchRecord) -> dict:
    """The batch object, its `results_url` on the door (and behind the prefix) this request came through."""
    url = str(request.url.replace(query=""))
    return batch_view(record, url[: url.index(PATH)])


async def results_file(
    results: AsyncIterator[BatchResult], first: BatchResult | None = None
) -> AsyncGenerator[bytes, None]:
    """The results file (`first`, then `results`) in chunks of about 64 KiB: the desk reads the store a page
    at a time and the file goes out as it is read, never whole in memory."""
    pending = [] if first is None else [result_line(first)]
    size = sum(map(len, pending))
    try:
        async for result in results:
            line = result_line(result)
            pending.append(line)
            size += len(line)
            if size >= _CHUNK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
    finally:
        close = getattr(results, "aclose", None)  # the desk's reading ends with the file (a client that left)
        if close is not None:
            await close()
    if pending:
        yield b"".join(pending)


@router.post(PATH, name="create_message_batch")
async def create_batch(request: Request, caller: CallerDep) -> Response:
    desk = _desk(request)  # before reading a body of up to 256 MB
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    caps = RequestCaps(settings.max_messages, settings.max_tools, settings.max_block_chars)

    def check(body: MessagesRequest) -> None:
        check_model(caller.limits, body.model, runtime.registry.resolve(body.model))

    raw = await read_body(request, MAX_BATCH_BYTES)  # a batch has its own cap, far above max_body_bytes
    # Up to 100,000 bodies to validate: off the event loop, so interactive requests keep being served.
    items = await asyncio.to_thread(parse_batch, raw, caps, check)
    del raw
    record = await desk.create(caller, new_id(BATCH_ID_PREFIX), items)
    return JSONResponse(_shown(request, record))


@router.get(PATH, name="list_message_batches")
async def list_batches(request: Request, caller: CallerDep) -> Response:
    query = request.query_params
    limit = page_limit(query.get("limit"))
    records, has_more = await _desk(request).page(
        caller, limit=limit, before_id=query.get("before_id"), after_id=query.get("after_id")
    )
    return JSONResponse(batch_page([_shown(request, record) for record in records], has_more))


@router.get(PATH + "/{batch_id}", name="get_message_batch")
async def get_batch(request: Request, caller: CallerDep, batch_id: str) -> Response:
    return JSONResponse(_shown(request, await _desk(request).get(caller, batch_id)))


@router.post(PATH + "/{batch_id}/cancel", name="cancel_message_batch")
async def cancel_batch(request: Request, caller: CallerDep, batch_id: str) -> Response:
    return JSONResponse(_shown(request, await _desk(request).cancel(caller, batch_id)))


@router.delete(PATH + "/{batch_id}", name="delete_message_batch")
async def delete_batch(request: Request, caller: CallerDep, batch_id: str) -> Response:
    await _desk(request).delete(caller, batch_id)
    return JSONResponse(deleted(batch_id))


@router.get(PATH + "/{batch_id}/results", name="message_batch_results")
async def batch_results(request: Request, caller: CallerDep, batch_id: str) -> Response:
    results = _desk(request).results(caller, batch_id)
    # The first line is read before answering: a batch that is missing or still running is an error response.
    first = await anext(aiter(results), None)
    return StreamingResponse(
        _cut_short_on_failure(batch_id, results_file(results, first)),
        media_type=RESULTS_TYPE,
        headers={"content-disposition": f"attachment; filename*=utf-8''{batch_id}_results.jsonl"},
    )


async def _cut_short_on_failure(batch_id: str, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            # The 200 is out: the transfer ends unfinished (no last chunk), so no client takes a cut-off file
            # for a whole one; one line in the log, no traceback.
            log.error("the results of %s were cut short: %s", batch_id, exc)
            raise ClientDisconnected from None
