"""Prompt-caching breakpoints (wire contract §15): hints only, since engines reuse the KV prefix by
themselves, but more than four is refused as Anthropic does."""

from __future__ import annotations

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest

MAX_BREAKPOINTS = 4


def check_breakpoints(request: MessagesRequest | CountTokensRequest) -> None:
    found = sum(1 for tool in request.tools or () if tool.cache_control is not None)
    found += sum(1 for block in request.system or () if block.cache_control is not None)
    found += sum(
        1 for message in request.messages for block in message.content if getattr(block, "cache_control", None)
    )
    if found > MAX_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )
