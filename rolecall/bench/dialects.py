"""The two wire dialects a target may speak: Anthropic Messages and OpenAI chat completions.

Each knows its request body and how to read a streamed event or a whole response into the same
terms: visible output text, and the output token count when the server reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from rolecall.bench.workload import Workload

Api = Literal["anthropic", "openai"]

_PATHS: dict[str, str] = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint under test."""

    name: str
    url: str  # the full endpoint URL
    api: Api
    api_key: str | None = None
    model: str | None = None  # overrides the workload's model name


def target(name: str, url: str, api: Api | None = None, api_key: str | None = None, model: str | None = None) -> Target:
    """A target from a base URL or a full endpoint URL; the dialect follows the path unless given."""
    path = urlsplit(url).path.rstrip("/")
    if api is None:
        api = "openai" if path.endswith("/chat/completions") else "anthropic"
    if not path.endswith(("/messages", "/chat/completions")):
        url = url.rstrip("/").removesuffix("/v1") + _PATHS[api]
    return Target(name, url, api, api_key, model)


def headers(target: Target) -> dict[str, str]:
    found = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if target.api_key:
        # Both schemes: rolecall takes either, llama.cpp and vLLM take the bearer token.
        found["x-api-key"] = target.api_key
        found["authorization"] = f"Bearer {target.api_key}"
    return found


def request_body(target: Target, workload: Workload, messages: list[dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model or workload.model,
        "max_tokens": workload.max_tokens,
        "messages": messages,
        "stream": workload.stream,
    }
    if workload.top_k is not None:
        body["top_k"] = workload.top_k
    if target.api == "openai" and workload.stream:
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass(frozen=True, slots=True)
class Reading:
    """What one stream event or one whole response carried."""

    text: str = ""
    output_tokens: int | None = None
    input_tokens: int | None = None  # prompt tokens, cached ones included
    error: str | None = None


def read_event(api: Api, event: dict[str, Any]) -> Reading:
    return _read_anthropic_event(event) if api == "anthropic" else _read_openai_chunk(event)


def read_response(api: Api, body: dict[str, Any]) -> Reading:
    """A whole non-streamed response."""
    if "error" in body and body.get("type", "error") == "error":
        return Reading(error=str(body["error"])[:200])
    if api == "anthropic":
        text = "".join(block.get("text", "") for block in body.get("content") or ())
        usage = body.get("usage") or {}
        return Reading(text, usage.get("output_tokens"), _anthropic_input(usage))
    choices = body.get("choices") or [{}]
    usage = body.get("usage") or {}
    text = (choices[0].get("message") or {}).get("content") or ""
    return Reading(text, usage.get("completion_tokens"), usage.get("prompt_tokens"))


def _read_anthropic_event(event: dict[str, Any]) -> Reading:
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event["delta"]
        return Reading(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or "")
    if kind == "message_start":
        return Reading(input_tokens=_anthropic_input(event["message"].get("usage") or {}))
    if kind == "message_delta":
        return Reading(output_tokens=(event.get("usage") or {}).get("output_tokens"))
    if kind == "error":
        return Reading(error=str(event.get("error"))[:200])
    return Reading()


def _read_openai_chunk(chunk: dict[str, Any]) -> Reading:
    if "error" in chunk:
        return Reading(error=str(chunk["error"])[:200])
    text = ""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        text += delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
    usage = chunk.get("usage") or {}
    return Reading(text, usage.get("completion_tokens"), usage.get("prompt_tokens"))


def _anthropic_input(usage: dict[str, Any]) -> int | None:
    if "input_tokens" not in usage:
        return None
    return usage["input_tokens"] + (usage.get("cache_read_input_tokens") or 0)
