"""The Anthropic error envelope, with MiniMax's `(code)` suffix and `base_resp`."""

from __future__ import annotations

from typing import Any

from rolecall.core.errors import RolecallError


def error_envelope(error: RolecallError, request_id: str | None) -> dict[str, Any]:
    """The Anthropic error body with MiniMax's `(code)` suffix and `base_resp`."""
    return {
        "type": "error",
        "error": {"type": error.error_type, "message": f"{error.message} ({error.code})"},
        "request_id": request_id,
        "base_resp": {"status_code": error.code, "status_msg": error.message},
    }
