"""Anthropic's rate-limit headers, from a key's standing: on every response of a limited key."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from rolecall.service.limits.state import Allowance, Verdict


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    """`anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` for the limits the key has."""
    headers: dict[str, str] = {}
    for kind, allowance in (("requests", verdict.requests), ("tokens", verdict.tokens)):
        if allowance is not None:
            headers |= _three(kind, allowance)
    return headers


def _three(kind: str, allowance: Allowance) -> dict[str, str]:
    reset = datetime.fromtimestamp(math.ceil(allowance.resets_at), UTC).isoformat().replace("+00:00", "Z")
    return {
        f"anthropic-ratelimit-{kind}-limit": str(allowance.limit),
        f"anthropic-ratelimit-{kind}-remaining": str(allowance.remaining),
        f"anthropic-ratelimit-{kind}-reset": reset,
    }
