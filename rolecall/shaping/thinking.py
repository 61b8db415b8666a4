"""Thinking signatures: HMAC-SHA256 over the model and thinking text, as 64 hex characters (MiniMax's shape)."""

from __future__ import annotations

import hashlib
import hmac


class ThinkingSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, thinking: str, model: str) -> str:
        message = model.encode() + b"\x00" + thinking.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, thinking: str, model: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(thinking, model), signature)
