"""Small helpers shared by the real-model suites (tests/test_real_*.py)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.sse import check_stream

MODEL = "MiniMax-M2.7"
SERVED_ID = "smollm2-135m-instruct"
ALIASES = ["MiniMax-M2.7", "MiniMax-M2.7-highspeed", "MiniMax-M2.5", "MiniMax-M2.1"]
SUCCESS = {"status_code": 0, "status_msg": "success"}
REQUEST_ID = re.compile(r"req_[0-9A-Za-z]{24}")
MESSAGE_ID = re.compile(r"msg_[0-9A-Za-z]{24}")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def body(content: Any = "Say hello.", max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    """A minimal Messages body for the real model."""
    return {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}], **extra}


def prompt_total(usage: dict[str, Any]) -> int:
    """What count_tokens must equal: every prompt token, cached or not."""
    return usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]


def block_text(content: list[dict[str, Any]]) -> str:
    return "".join(block["text"] for block in content if block["type"] == "text")


def sdk_text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def stream_text(events: list[dict[str, Any]]) -> str:
    """The visible text of a checked stream: its text deltas, concatenated."""
    return "".join(
        e["delta"]["text"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


def final_delta(events: list[dict[str, Any]]) -> dict[str, Any]:
    deltas = [e for e in events if e["type"] == "message_delta"]
    assert len(deltas) == 1, "exactly one message_delta"
    return deltas[0]


def post_stream(
    http: httpx.Client, payload: dict[str, Any], path: str = "/v1/messages"
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """POST a `stream: true` body, read the raw SSE bytes and run the invariant checker on them."""
    response = http.post(path, json={**payload, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    return response, check_stream(response.content)


def count_tokens(http: httpx.Client, payload: dict[str, Any]) -> int:
    response = http.post("/v1/messages/count_tokens", json=payload)
    assert response.status_code == 200, response.text
    return response.json()["input_tokens"]


def assert_error(
    response: httpx.Response, status: int, error_type: str, code: int, contains: str | None = None
) -> dict:
    """The Anthropic error envelope with MiniMax's base_resp, tied to the `request-id` header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"type", "error", "request_id", "base_resp"}
    assert payload["type"] == "error"
    assert payload["error"]["type"] == error_type
    message = payload["error"]["message"]
    assert isinstance(message, str) and message
    assert REQUEST_ID.fullmatch(response.headers["request-id"])
    assert payload["request_id"] == response.headers["request-id"]
    assert payload["base_resp"]["status_code"] == code
    assert message == f"{payload['base_resp']['status_msg']} ({code})"
    if 400 <= status < 500 and status not in (408, 409, 429):
        assert response.headers["x-should-retry"] == "false"
    if contains is not None:
        assert contains in message, message
    return payload


def metric_sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The value of one Prometheus sample whose labels include `labels`; `default` if there is none."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        if not re.fullmatch(re.escape(name) + r"(\{.*\})?", metric):
            continue
        if all(f'{key}="{val}"' in metric for key, val in labels.items()):
            return float(value)
    if default is not None:
        return default
    raise AssertionError(f"no sample {name} {labels}")
