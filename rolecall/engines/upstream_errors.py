"""An OpenAI-compatible server's failures as the errors rolecall's clients see.

`ReplicaFault` marks failures of the server itself (unreachable, connection dropped, 5xx): the
replica layer ejects that server and, while nothing reached the client yet, tries another one.
"""

from __future__ import annotations

from typing import Any

import orjson

from rolecall.core.errors import InvalidRequest, Overloaded, PromptTooLong, RolecallError, UpstreamError

_DEFAULT_RETRY_AFTER = 1.0


class ReplicaFault(UpstreamError):
    """The server failed, not the request: another replica may well succeed."""


class Unreachable(ReplicaFault):
    """No connection could be made (refused, unreachable, or not within `connect_timeout`). When no replica
    can be reached the client hears 529 with `retry-after`, as for an overloaded one: trying again later
    is the right move, and the SDKs do it."""


def error_message(body: Any) -> str:
    """The `message` of an OpenAI-style `{"error": {...}}` body, or the body itself."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body)


def upstream_failure(status: int, raw: bytes, retry_after: str | None = None) -> RolecallError:
    """An HTTP error answer: 429/503 -> 529 overloaded (retry-after kept), 400 -> 400 with the
    server's message, a context overflow -> `prompt is too long`, other 5xx -> a replica fault."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = {"error": {"message": raw.decode("utf-8", "replace")[:500]}}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        return PromptTooLong(int(error.get("n_prompt_tokens", 0)), int(error.get("n_ctx", 1)) - 1)
    message = error_message(body)
    if status in (429, 503):
        return Overloaded("Overloaded", retry_after=_seconds(retry_after))
    if status in (400, 422):
        return InvalidRequest(message)
    if status >= 500:
        return ReplicaFault(f"engine error {status}: {message}")
    if status in (401, 403):
        # `api_key_env` is optional, so a missing or wrong key shows up here first: say where it comes from.
        return UpstreamError(
            f"engine error {status}: {message} (the upstream refused rolecall's key: set the environment "
            "variable named by the model's `api_key_env` before starting rolecall)"
        )
    return UpstreamError(f"engine error {status}: {message}")


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else _DEFAULT_RETRY_AFTER
    except ValueError:  # an HTTP date: not worth parsing for a hint
        return _DEFAULT_RETRY_AFTER
