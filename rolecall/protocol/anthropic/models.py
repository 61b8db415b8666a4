"""`GET /v1/models`: one body that both SDKs read. `anthropic` reads `data[].{type, id, display_name,
created_at}` and `has_more` / `first_id` / `last_id`; `openai` reads `object: "list"` and
`data[].{id, object, created, owned_by}`. Each item and the page carry the union of both shapes' fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rolecall.core.errors import InvalidRequest

OWNER = "rolecall"


def model_object(model_id: str, display_name: str, created_at: str, context: int) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "max_input_tokens": context,
        "max_tokens": context,
        "object": "model",
        "created": int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()),
        "owned_by": OWNER,
    }


def model_page(
    items: list[dict[str, Any]], limit: int = 20, after_id: str | None = None, before_id: str | None = None
) -> dict[str, Any]:
    """One page of `items` (already newest first), paged by id like Anthropic's list endpoints."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000")
    ids = [item["id"] for item in items]
    start, end = 0, len(items)
    if after_id is not None:
        start = _position(ids, after_id, "after_id") + 1
    if before_id is not None:
        end = _position(ids, before_id, "before_id")
    window = items[start:end]
    page = window[-limit:] if before_id is not None and after_id is None else window[:limit]
    return {
        "object": "list",
        "data": page,
        "has_more": len(window) > len(page),
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def _position(ids: list[str], model_id: str, field: str) -> int:
    try:
        return ids.index(model_id)
    except ValueError:
        raise InvalidRequest(f"{field}: no model with id '{model_id}'") from None
