"""Who is asking: the identity authentication establishes and the service carries with each generation
(per-key limits and the usage ledger hang on it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    # A stable, non-secret name for the credential: the first hex digits of its sha256, or "anonymous"
    # when the server requires no key.
    key_id: str

    @property
    def anonymous(self) -> bool:
        return self.key_id == ANONYMOUS.key_id


ANONYMOUS = Caller("anonymous")
