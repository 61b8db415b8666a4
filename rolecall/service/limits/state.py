"""One key's limit state and the arithmetic of its windows: pure functions of the state, the key's limits
and the time, so every instance (and every test, with its own clock) decides the same way.

- Requests and tokens per minute count in fixed windows aligned to the clock (`window` seconds, 60 in
  production): exact within a window and one small record per key; a burst straddling a window edge can
  reach twice the rate for that one moment, as with any fixed window.
- The token quota counts in a rolling window that opens with the first request after the previous one
  closed and lasts `quota_window_seconds` (MiniMax's Token Plan: 5 h): it resets all at once, at a time the
  429 can state.
- Concurrency is a set of leases, each with an expiry, so a crashed instance's requests stop counting
  once their leases lapse; a live instance renews its leases before then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import orjson

from rolecall.core.caller import KeyLimits


@dataclass(frozen=True, slots=True)
class Window:
    """A count within a window that opened at `start` (epoch seconds)."""

    start: float = 0.0
    used: int = 0

    def current(self, now: float, length: float) -> Window:
        """This window if it still runs at `now`, else an empty one opened at the fixed boundary. Never an
        earlier one: a decision whose `now` lies just before a window another one already opened (a clock a
        little behind, a request that waited) counts in that newer window, so no count is ever reset."""
        opened = math.floor(now / length) * length
        return self if self.start >= opened else Window(opened)

    def rolling(self, now: float, length: float) -> Window:
        """This window if it still runs at `now`, else an empty one that opens now (the quota's window)."""
        return self if self.start and now < self.start + length else Window(now)


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the counters hold for one key (serialized as a small JSON text)."""

    requests: Window = Window()
    tokens: Window = Window()
    quota: Window = Window()
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry (epoch seconds)

    def live_leases(self, now: float) -> dict[str, float]:
        return {lease: expiry for lease, expiry in self.leases.items() if expiry > now}

    def dumps(self) -> str:
        return orjson.dumps(
            {
                "requests": [self.requests.start, self.requests.used],
                "tokens": [self.tokens.start, self.tokens.used],
                "quota": [self.quota.start, self.quota.used],
                "leases": self.leases,
            }
        ).decode()

    @classmethod
    def loads(cls, text: str | None) -> KeyState:
        """The state a counter holds; a key never seen (None) starts empty."""
        if not text:
            return cls()
        raw = orjson.loads(text)
        return cls(
            Window(*raw["requests"]),
            Window(*raw["tokens"]),
            Window(*raw["quota"]),
            {str(lease): float(expiry) for lease, expiry in raw["leases"].items()},
        )


@dataclass(frozen=True, slots=True)
class Allowance:
    """One limit's standing after a decision: the `anthropic-ratelimit-*` headers' three values."""

    limit: int
    remaining: int
    resets_at: float  # epoch seconds


Refusal = Literal["requests", "tokens", "concurrency", "quota"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request is admitted, and the standing of the key's request and token limits."""

    refused: Refusal | None
    requests: Allowance | None  # requests per minute, when the key has that limit
    tokens: Allowance | None  # the tighter of tokens per minute and the quota, when the key has either
    retry_at: float | None = None  # when a refused request may succeed (epoch seconds); None: not by waiting


@dataclass(frozen=True, slots=True)
class Clocks:
    """The lengths the arithmetic uses: the rate window (60 s) and how long a lease lives unrenewed."""

    window: float = 60.0
    lease: float = 120.0


def admit(state: KeyState, limits: KeyLimits, now: float, lease: str, clocks: Clocks) -> tuple[KeyState, Verdict]:
    """Admit one request at `now` or refuse it; an admitted request counts one request and takes `lease`."""
    state = _rolled(state, limits, now, clocks)
    refused, retry_at = _first_refusal(state, limits, now, clocks)
    if refused is None:
        leases = state.live_leases(now)
        if limits.concurrency is not None:
            leases[lease] = now + clocks.lease
        requests = Window(state.requests.start, state.requests.used + 1)
        state = replace(state, requests=requests, leases=leases)
    return state, Verdict(refused, _requests(state, limits, clocks), _tokens(state, limits, clocks), retry_at)


def settle(state: KeyState, limits: KeyLimits, now: float, lease: str, tokens: int, clocks: Clocks) -> KeyState:
    """A request ended at `now`: its tokens (input + output, as served) count, and its lease is returned."""
    state = _rolled(state, limits, now, clocks)
    leases = state.live_leases(now)
    leases.pop(lease, None)
    return replace(
        state,
        tokens=Window(state.tokens.start, state.tokens.used + tokens),
        quota=Window(state.quota.start, state.quota.used + tokens),
        leases=leases,
    )


def renew(state: KeyState, now: float, leases: set[str], clocks: Clocks) -> KeyState:
    """Extend the given leases (still running requests); lapsed ones are dropped."""
    live = state.live_leases(now)
    return replace(state, leases={lease: (now + clocks.lease if lease in leases else e) for lease, e in live.items()})


def standing(state: KeyState, limits: KeyLimits, now: float, clocks: Clocks) -> Verdict:
    """The key's standing at `now` without counting anything (for responses that generate nothing)."""
    state = _rolled(state, limits, now, clocks)
    return Verdict(None, _requests(state, limits, clocks), _tokens(state, limits, clocks))


def _rolled(state: KeyState, limits: KeyLimits, now: float, clocks: Clocks) -> KeyState:
    quota = state.quota
    if limits.quota_tokens is not None and limits.quota_window_seconds:
        quota = quota.rolling(now, limits.quota_window_seconds)
    return replace(
        state,
        requests=state.requests.current(now, clocks.window),
        tokens=state.tokens.current(now, clocks.window),
        quota=quota,
    )


def _first_refusal(
    state: KeyState, limits: KeyLimits, now: float, clocks: Clocks
) -> tuple[Refusal | None, float | None]:
    """The limit a new request would break (the quota first: it lasts longest), and when it lifts."""
    if limits.quota_tokens is not None and state.quota.used >= limits.quota_tokens:
        window = limits.quota_window_seconds
        return "quota", (state.quota.start + window) if window else None  # no window: a lifetime quota
    if limits.tokens_per_minute is not None and state.tokens.used >= limits.tokens_per_minute:
        return "tokens", state.tokens.start + clocks.window
    if limits.requests_per_minute is not None and state.requests.used >= limits.requests_per_minute:
        return "requests", state.requests.start + clocks.window
    if limits.concurrency is not None:
        live = state.live_leases(now)
        if len(live) >= limits.concurrency:
            # A running request may end any moment; a client that retries in a second usually gets in.
            return "concurrency", min(now + 1.0, min(live.values()))
    return None, None


def _requests(state: KeyState, limits: KeyLimits, clocks: Clocks) -> Allowance | None:
    if limits.requests_per_minute is None:
        return None
    limit = limits.requests_per_minute
    return Allowance(limit, max(0, limit - state.requests.used), state.requests.start + clocks.window)


def _tokens(state: KeyState, limits: KeyLimits, clocks: Clocks) -> Allowance | None:
    candidates = []
    if limits.tokens_per_minute is not None:
        limit = limits.tokens_per_minute
        candidates.append(Allowance(limit, max(0, limit - state.tokens.used), state.tokens.start + clocks.window))
    if limits.quota_tokens is not None and limits.quota_window_seconds:
        limit = limits.quota_tokens
        resets = state.quota.start + limits.quota_window_seconds
        candidates.append(Allowance(limit, max(0, limit - state.quota.used), resets))
    return min(candidates, key=lambda allowance: allowance.remaining, default=None)
