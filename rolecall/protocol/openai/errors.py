"""OpenAI's error envelope, with MiniMax's `(code)` suffix and `base_resp` in the same body, so the `openai`
SDK raises its typed exceptions and MiniMax-aware clients read the code."""

from __future__ import annotations

from typing import Any

from rolecall.core.errors import RolecallError

SUCCESS = {"status_code": 0, "status_msg": "success"}

# OpenAI's `error.type` for each of rolecall's kinds (its SDK dispatches on the HTTP status, not on these).
_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded_error": "server_overloaded",
    "timeout_error": "timeout_error",
    "api_error": "server_error",
}


def error_envelope(error: RolecallError) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}, "base_resp": {...}}`; `param` is the field the
    message starts with (`messages.0.content: …` -> `messages.0.content`), when it names one."""
    return {
        "error": {
            "message": f"{error.message} ({error.code})",
            "type": _TYPES.get(error.error_type, "server_error"),
            "param": _param(error.message),
            "code": str(error.code),
        },
        "base_resp": base_resp(error),
    }


def base_resp(error: RolecallError) -> dict[str, Any]:
    return {"status_code": error.code, "status_msg": error.message}


def _param(message: str) -> str | None:
    head, sep, _ = message.partition(": ")
    if sep and head and " " not in head and not head.startswith("`"):
        return head
    return None
