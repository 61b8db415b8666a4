"""Stream events and the usage object, as plain dicts in the key order the spec shows.

Plain dicts, not models: they are built once per token on the hot path and go straight to JSON.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]

SUCCESS = {"status_code": 0, "status_msg": "success"}
PING: Event = {"type": "ping"}
MESSAGE_STOP: Event = {"type": "message_stop"}


def usage(input_tokens: int, output_tokens: int, cache_read_tokens: int = 0) -> dict[str, Any]:
    """Anthropic usage; rolecall creates no explicit cache entries, so creation is always 0."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }


def message_start(message_id: str, model: str, input_tokens: int, cache_read_tokens: int = 0) -> Event:
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(input_tokens, 0, cache_read_tokens),
        },
    }


def block_start(index: int, block: dict[str, Any]) -> Event:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> Event:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, stop_sequence: str | None, final_usage: dict[str, Any]) -> Event:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": final_usage,
    }
