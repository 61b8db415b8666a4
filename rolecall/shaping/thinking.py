"""Thinking: HMAC-SHA256 signatures (64 hex characters, MiniMax's shape) and the rules for reasoning
sent back in history (wire contract §6.3), for every door."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from rolecall.core.errors import InvalidRequest


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

    def admit(self, thinking: str, signature: str | None, where: str) -> str | None:
        """The reasoning to carry to the engine, or None to drop it; `where` names it in the error."""
        if not signature:
            # MiniMax clients keep reasoning without its signature; a client can write any assistant
            # text anyway, so refusing it would protect nothing.
            return thinking
        if self.signer.verify(thinking, self.model_id, signature):
            return thinking
        if self.lenient:
            return None
        raise InvalidRequest(f"{where}: Invalid `signature` in `thinking` block")
