"""Message Batches on the wire (`/v1/messages/batches`): the create body, read and validated as a whole,
and the shapes the door answers with (the batch object, the list page, the delete answer, one results line).

A batch is all or nothing: one bad request refuses the whole batch with a 400 that names its `custom_id` and
the field, and nothing is queued. Each `params` is validated exactly as `POST /v1/messages` validates its body
(the same model, the same request caps), so a request that is accepted here is one `/v1/messages` accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import pydantic_core
from pydantic import BaseModel, Field

from rolecall.core.batches import BatchItem, BatchRecord, BatchResult
from rolecall.core.errors import InvalidRequest, PermissionDenied, RolecallError
from rolecall.protocol.anthropic.limits import RequestCaps, check_caps
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body

MAX_REQUESTS = 100_000  # Anthropic's limits for one batch
MAX_BATCH_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
BATCH_ID_PREFIX = "msgbatch_"


class BatchRequest(BaseModel):
    """One request of a batch, for the OpenAPI schema (`parse_batch` validates, naming the request)."""

    custom_id: Annotated[str, Field(pattern=f"^{CUSTOM_ID.pattern}$")]
    params: MessagesRequest


class CreateBatchRequest(BaseModel):
    """`POST /v1/messages/batches`, for the OpenAPI schema."""

    requests: Annotated[list[BatchRequest], Field(min_length=1, max_length=MAX_REQUESTS)]


# A check the door adds for each request's decoded body (its model is served, the key may use it).
RequestCheck = Callable[[MessagesRequest], None]


def parse_batch(body: bytes, caps: RequestCaps, check: RequestCheck) -> list[BatchItem]:
    """The create body's requests, each validated as a non-streaming `/v1/messages` body and passed to
    `check`; the first invalid one raises an error naming its index, its `custom_id` and the field."""
    try:
        # Integers exactly as sent (orjson would turn one past 64 bits into a float), as /v1/messages reads them;
        # NaN and Infinity are not JSON, and the store could not keep them.
        document = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest('Request body must be a JSON object: {"requests": [{"custom_id": ..., "params": ...}]}')
    requests = document.get("requests")
    if not isinstance(requests, list):
        wrong = "Field required" if requests is None else "Input should be a valid list"
        raise InvalidRequest(f'requests: {wrong}; send {{"requests": [{{"custom_id": ..., "params": ...}}]}}')
    if not requests:
        raise InvalidRequest("requests: a batch needs at least one request")
    if len(requests) > MAX_REQUESTS:
        raise InvalidRequest(
            f"requests: at most {MAX_REQUESTS} requests are accepted in one batch, got {len(requests)}; "
            "split them into several batches"
        )
    seen: dict[str, int] = {}
    items = []
    for index, request in enumerate(requests):
        custom_id = _custom_id(index, request, seen)
        items.append(BatchItem(custom_id, _params(index, custom_id, request, caps, check)))
    return items


def _custom_id(index: int, request: object, seen: dict[str, int]) -> str:
    if not isinstance(request, dict):
        raise InvalidRequest(f'requests.{index}: Input should be an object with "custom_id" and "params"')
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str):
        wrong = "Field required" if custom_id is None else "Input should be a valid string"
        raise InvalidRequest(f"requests.{index}.custom_id: {wrong}")
    if not CUSTOM_ID.fullmatch(custom_id):
        raise InvalidRequest(
            f"requests.{index}.custom_id: {_quoted(custom_id)} is not a valid custom_id: "
            "use 1 to 64 letters, digits, '_' or '-'"
        )
    first = seen.setdefault(custom_id, index)
    if first != index:
        raise InvalidRequest(
            f"requests.{index}.custom_id: {_quoted(custom_id)} is already the custom_id of requests.{first}; "
            "each request in a batch needs its own"
        )
    return custom_id


def _params(index: int, custom_id: str, request: dict, caps: RequestCaps, check: RequestCheck) -> dict[str, Any]:
    where = f"requests.{index} (custom_id {_quoted(custom_id)})"
    params = request.get("params")
    if not isinstance(params, dict):
        wrong = "Field required" if params is None else "Input should be an object (a Messages request body)"
        raise InvalidRequest(f"{where}: params: {wrong}")
    try:
        # Re-encoded and parsed as `/v1/messages` parses its body: the same model in the same (JSON) mode.
        encoded = _encoded(params)
        body = parse_body(MessagesRequest, encoded or json.dumps(params).encode())
        if body.stream is True:
            raise InvalidRequest("stream: batch requests cannot stream; leave stream out or set it to false")
        check_caps(body, caps)
        check(body)
    except PermissionDenied as exc:  # the key may not use this model: as /v1/messages answers, a 403
        raise PermissionDenied(f"{where}: {exc.message}") from None
    except RolecallError as exc:  # anything else this request would be refused for is the batch's 400
        raise InvalidRequest(f"{where}: params.{exc.message}") from None
    if encoded is None:  # valid for /v1/messages (in a field it ignores), but the store keeps JSON it can read
        raise InvalidRequest(f"{where}: params: numbers must fit in 64 bits")
    return params


def _encoded(params: dict[str, Any]) -> bytes | None:
    """`params` as JSON, or None where it holds an integer past 64 bits (orjson, like the engines, refuses one)."""
    try:
        return orjson.dumps(params)
    except orjson.JSONEncodeError:
        return None


def _quoted(text: str) -> str:
    return orjson.dumps(text).decode()


def timestamp(epoch: float | None) -> str | None:
    """RFC 3339 in UTC with microseconds and "Z", as Anthropic writes every batch time."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def batch_object(record: BatchRecord, results_url: str) -> dict[str, Any]:
    """The `message_batch` object; `results_url` (absolute) is shown only once the batch has ended."""
    counts = record.counts
    return {
        "id": record.id,
        "type": "message_batch",
        "processing_status": record.status,
        "request_counts": {
            "processing": counts.processing,
            "succeeded": counts.succeeded,
            "errored": counts.errored,
            "canceled": counts.canceled,
            "expired": counts.expired,
        },
        "created_at": timestamp(record.created_at),
        "expires_at": timestamp(record.expires_at),
        "ended_at": timestamp(record.ended_at),
        "cancel_initiated_at": timestamp(record.cancel_initiated_at),
        "archived_at": None,  # rolecall keeps results until the batch is deleted
        "results_url": results_url if record.status == "ended" else None,
    }


def batch_page(objects: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """One page of batch objects (newest first), shaped like the models list."""
    return {
        "data": objects,
        "has_more": has_more,
        "first_id": objects[0]["id"] if objects else None,
        "last_id": objects[-1]["id"] if objects else None,
    }


def deleted(batch_id: str) -> dict[str, str]:
    """The answer to `DELETE /v1/messages/batches/{id}`."""
    return {"id": batch_id, "type": "message_batch_deleted"}


def result_line(result: BatchResult) -> bytes:
    """One line of the results file: compact JSON and a newline (never a blank line)."""
    outcome: dict[str, Any] = {"type": result.type}
    if result.type == "succeeded":
        outcome["message"] = result.body
    elif result.type == "errored":
        outcome["error"] = result.body
    return orjson.dumps({"custom_id": result.custom_id, "result": outcome}) + b"\n"


def page_limit(value: str | None) -> int:
    """The list's `limit` query parameter: 1 to 1000, 20 when absent."""
    if value is None:
        return 20
    if not value.isdigit():
        raise InvalidRequest("limit: Input should be a valid integer")
    limit = int(value)
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000")
    return limit
