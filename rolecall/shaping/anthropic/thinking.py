"""The Messages API's request-level thinking rules (wire contract §6.1), with Anthropic's wording."""

from __future__ import annotations

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest

INTERLEAVED_BETA = "interleaved-thinking-2025-05-14"
_BUDGET_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"


def check_thinking_request(request: MessagesRequest | CountTokensRequest, betas: frozenset[str]) -> None:
    """Anthropic's rules for `thinking: enabled`, with its wording."""
    thinking = request.thinking
    if thinking is None or thinking.type != "enabled":
        return
    max_tokens = getattr(request, "max_tokens", None)
    if max_tokens is not None and thinking.budget_tokens >= max_tokens and INTERLEAVED_BETA not in betas:
        raise InvalidRequest(
            "`max_tokens` must be greater than `thinking.budget_tokens`. "
            f"Please consult our documentation at {_BUDGET_DOCS}"
        )
    if request.tool_choice is not None and request.tool_choice.type in ("any", "tool"):
        raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
