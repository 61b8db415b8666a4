"""Who is asking: the identity authentication establishes and the service carries with each generation
(per-key limits and the usage ledger hang on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What one key may do. `None` (or an empty allow-list) means no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None  # input + output, counted as served
    concurrency: int | None = None  # requests in flight at once
    quota_tokens: int | None = None  # tokens per rolling `quota_window_seconds`
    quota_window_seconds: int | None = None
    models: tuple[str, ...] = ()  # glob patterns of the model names it may ask for; empty: every model
    expires_at: datetime | None = None  # timezone-aware; refused from then on

    @property
    def limited(self) -> bool:
        """Whether any rate or quota limit applies (such a key's responses carry the rate-limit headers)."""
        return any(
            limit is not None
            for limit in (self.requests_per_minute, self.tokens_per_minute, self.concurrency, self.quota_tokens)
        )


NO_LIMITS = KeyLimits()


@dataclass(frozen=True, slots=True)
class Caller:
    # A stable, non-secret name for the credential: the first hex digits of its sha256, or "anonymous"
    # when the server requires no key.
    key_id: str
    # The key's name in the store (`rolecall keys create NAME`); keys from the config file have none.
    name: str | None = None
    limits: KeyLimits = NO_LIMITS

    @property
    def anonymous(self) -> bool:
        return self.key_id == ANONYMOUS.key_id

    @property
    def label(self) -> str:
        """How the ledger, metrics and logs name this caller: the store name, else `config:<key_id>`."""
        if self.name is not None:
            return self.name
        return self.key_id if self.anonymous else f"config:{self.key_id}"


ANONYMOUS = Caller("anonymous")
