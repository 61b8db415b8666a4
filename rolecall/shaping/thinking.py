"""Thinking: HMAC-SHA256 signatures (64 hex characters, MiniMax's shape), the rules for thinking
blocks sent back in history (wire contract §6.3) and the request-level thinking rules (§6.1)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.blocks import ThinkingBlock
from rolecall.protocol.requests import CountTokensRequest, MessagesRequest

INTERLEAVED_BETA = "interleaved-thinking-2025-05-14"
_BUDGET_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"


class ThinkingSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, thinking: str, model: str) -> str:
        message = model.encode() + b"\x00" + thinking.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, thinking: str, model: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(thinking, model), signature)


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """How thinking blocks in history are admitted. Signatures bind to the served model's id, so a
    client may switch between aliases of one model without losing its reasoning."""

    signer: ThinkingSigner
    model_id: str
    lenient: bool = False  # accept and drop a bad signature instead of refusing the request

    def admit(self, block: ThinkingBlock, i: int, j: int) -> str | None:
        """The reasoning to carry to the engine, or None to drop the block."""
        if not block.signature:
            # MiniMax clients keep reasoning without its signature; a client can write any assistant
            # text anyway, so refusing it would protect nothing.
            return block.thinking
        if self.signer.verify(block.thinking, self.model_id, block.signature):
            return block.thinking
        if self.lenient:
            return None
        raise InvalidRequest(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")


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
