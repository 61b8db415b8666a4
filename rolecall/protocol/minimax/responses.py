"""What `/v1/text/chatcompletion_v2` adds to the OpenAI door's chunks and body: errors in MiniMax's
documented form (HTTP 200, `base_resp.status_code` ≠ 0, no choices) and the stream's closing frame."""

from __future__ import annotations

from typing import Any

from rolecall.core.errors import RolecallError


def error_body(error: RolecallError) -> dict[str, Any]:
    """MiniMax's error form: only `base_resp`, its message with the `(code)` suffix the other doors use."""
    return {"base_resp": {"status_code": error.code, "status_msg": f"{error.message} ({error.code})"}}


def closing_frame(folded: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """MiniMax's last stream frame: the whole reply as one `chat.completion` (`folded`: the fold of the chunks
    sent), with the usage and `base_resp`."""
    return {**folded, "usage": usage}
