"""The bytes of /v1/messages, pinned: key order of the greedy non-stream body and of every SSE event, the
compact JSON encoding, and the event sequence. The reshape onto neutral events must not move a byte."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.real_checks import MODEL
from tests.support.sse import parse_frames

PAYLOAD = {
    "model": MODEL,
    "max_tokens": 12,
    "messages": [{"role": "user", "content": "Name a planet."}],
    "top_k": 1,
}
USAGE_KEYS = [
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "service_tier",
]
MESSAGE_KEYS = ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]


def compact(value: object) -> bytes:
    """JSON as rolecall writes it (orjson): no spaces, non-ASCII as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_greedy_body_keys_and_bytes(real_http: httpx.Client, settle: Callable[[], None]) -> None:
    settle()
    response = real_http.post("/v1/messages", json=PAYLOAD)
    message = response.json()
    assert list(message) == [*MESSAGE_KEYS, "base_resp"]
    assert list(message["usage"]) == USAGE_KEYS
    assert list(message["usage"]["cache_creation"]) == ["ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"]
    assert [list(block) for block in message["content"]] == [["type", "text"]]
    assert list(message["base_resp"]) == ["status_code", "status_msg"]
    assert response.content == compact(message), "compact JSON in the keys' order"


def test_greedy_stream_event_sequence_and_bytes(real_http: httpx.Client, settle: Callable[[], None]) -> None:
    settle()
    response = real_http.post("/v1/messages", json={**PAYLOAD, "stream": True})
    frames = parse_frames(response.content)
    kinds = [name for name, _ in frames]
    deltas = len(kinds) - 6
    assert deltas >= 1
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, ping, block_start, *rest = (data for _, data in frames)
    assert list(start) == ["type", "message"] and list(start["message"]) == MESSAGE_KEYS
    assert list(start["message"]["usage"]) == USAGE_KEYS and start["message"]["content"] == []
    assert ping == {"type": "ping"}
    assert list(block_start) == ["type", "index", "content_block"]
    assert block_start["content_block"] == {"type": "text", "text": ""}
    for delta in rest[:deltas]:
        assert list(delta) == ["type", "index", "delta"] and list(delta["delta"]) == ["type", "text"]
    block_stop, message_delta, message_stop = rest[deltas:]
    assert block_stop == {"type": "content_block_stop", "index": 0}
    assert list(message_delta) == ["type", "delta", "usage"]
    assert list(message_delta["delta"]) == ["stop_reason", "stop_sequence"]
    assert list(message_delta["usage"]) == USAGE_KEYS
    assert message_stop == {"type": "message_stop"}
    rebuilt = b"".join(b"event: " + name.encode() + b"\ndata: " + compact(data) + b"\n\n" for name, data in frames)
    assert response.content == rebuilt, "one `event:` line, one compact `data:` line, a blank line per event"
