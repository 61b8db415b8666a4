"""Per-key limits, enforced before a generation starts: the model allow-list (403), expiry (401), and the
request, token, concurrency and quota limits (429, with `retry-after`), over counters that every
instance shares. A key without limits touches no counter.

    ticket = await limiter.admit(caller, asked_model, model)   # raises the 4xx; ticket.headers for the 200
    ...                                                         # the generation runs
    await ticket.finish(tokens)                                 # tokens count, the lease is returned
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from rolecall.core.caller import Caller, KeyLimits
from rolecall.core.errors import InvalidCredentials, PermissionDenied, QuotaExceeded, RateLimited, StoreUnavailable
from rolecall.service.limits import state
from rolecall.service.limits.counters import LimitCounters
from rolecall.service.limits.headers import rate_limit_headers
from rolecall.service.limits.state import Clocks, KeyState, Verdict
from rolecall.service.registry import ServedModel

log = logging.getLogger("rolecall.limits")


class Ticket:
    """An admitted request's hold on its key's limits. `finish` once per generation it was `share`d with;
    the last one counts the tokens and returns the lease (always, also when the generation failed)."""

    def __init__(self, limiter: Limiter | None, caller: Caller, lease: str, headers: dict[str, str]) -> None:
        self.headers = headers  # the key's `anthropic-ratelimit-*` standing, for the response
        self._limiter = limiter
        self._caller = caller
        self._lease = lease
        self._open = 1
        self._tokens = 0

    @property
    def counts(self) -> bool:
        """Whether finishing changes the key's counters (False for a key without limits, or rpm alone)."""
        return self._limiter is not None

    def share(self, generations: int) -> Ticket:
        """One request that runs several generations (OpenAI's `n`): each finishes on its own."""
        if self._limiter is not None:
            self._open = generations
        return self

    async def finish(self, tokens: int) -> None:
        """One generation ended with `tokens` served (input + output)."""
        if self._limiter is None:
            return  # nothing to count (UNLIMITED is shared by every such request: it never changes)
        self._tokens += tokens
        self._open -= 1
        if self._open == 0:
            await self._limiter.settle(self._caller, self._lease, self._tokens)


UNLIMITED = Ticket(None, Caller("anonymous"), "", {})


class Limiter:
    """The limits of every key, over `counters`. `clock` (epoch seconds) and `clocks` are for tests."""

    def __init__(
        self, counters: LimitCounters, clocks: Clocks | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.counters = counters
        self.clocks = clocks or Clocks()
        self._clock = clock
        self._held: dict[str, tuple[Caller, set[str]]] = {}  # caller label -> the leases this process holds
        self._renewing: asyncio.Task[None] | None = None

    async def admit(self, caller: Caller, asked: str, model: ServedModel) -> Ticket:
        """Admit one request for `asked` (served by `model`) or raise its 401, 403 or 429."""
        limits = caller.limits
        check_model(limits, asked, model)
        check_expiry(limits, datetime.now(UTC))
        if not limits.limited:
            return UNLIMITED
        now, lease = self._clock(), uuid.uuid4().hex[:16]
        async with _counting():
            verdict = await self.counters.update(
                caller.label, lambda text: _encoded(state.admit(KeyState.loads(text), limits, now, lease, self.clocks))
            )
        headers = rate_limit_headers(verdict)
        if verdict.refused is not None:
            raise _refusal(verdict, limits, now, headers)
        if limits.concurrency is not None:
            self._hold(caller, lease)
        return Ticket(self if _settles(limits) else None, caller, lease, headers)

    async def peek(self, caller: Caller, asked: str, model: ServedModel) -> dict[str, str]:
        """For a request that generates nothing (count_tokens): the same 401 and 403 as `admit`, and the key's
        rate-limit headers as they stand, counting nothing ({} for a key without limits)."""
        limits = caller.limits
        check_model(limits, asked, model)
        check_expiry(limits, datetime.now(UTC))
        if not limits.limited:
            return {}
        async with _counting():
            record = await self.counters.read(caller.label)
        return rate_limit_headers(state.standing(KeyState.loads(record), limits, self._clock(), self.clocks))

    async def settle(self, caller: Caller, lease: str, tokens: int) -> None:
        """Count a finished request's tokens and return its lease."""
        self._release(caller.label, lease)
        now, limits = self._clock(), caller.limits

        def change(text: str | None) -> tuple[str, None]:
            return state.settle(KeyState.loads(text), limits, now, lease, tokens, self.clocks).dumps(), None

        try:
            await self.counters.update(caller.label, change)
        except Exception:  # the response is complete: a lost count is logged, not the client's failure
            log.warning("could not count a finished request of %s against its limits", caller.label, exc_info=True)

    def _hold(self, caller: Caller, lease: str) -> None:
        self._held.setdefault(caller.label, (caller, set()))[1].add(lease)
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.get_running_loop().create_task(self._renew())

    def _release(self, key: str, lease: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held[1].discard(lease)
            if not held[1]:
                del self._held[key]

    async def _renew(self) -> None:
        # While this process holds leases, extend them well before they lapse: only a crashed instance's
        # leases run out (and stop counting against their key's concurrency).
        while self._held:
            await asyncio.sleep(self.clocks.lease / 3)
            for key, (_, leases) in list(self._held.items()):
                with contextlib.suppress(Exception):  # a store hiccup: the next round renews
                    await self.counters.update(key, self._renewal(set(leases)))

    def _renewal(self, leases: set[str]) -> Callable[[str | None], tuple[str, None]]:
        now = self._clock()
        return lambda text: (state.renew(KeyState.loads(text), now, leases, self.clocks).dumps(), None)

    async def close(self) -> None:
        """Stop renewing leases and close the counters (at shutdown)."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        await self.counters.close()


@contextlib.asynccontextmanager
async def _counting() -> AsyncIterator[None]:
    """A limited key's request cannot be admitted uncounted: when the counters fail, 503 (clients retry it)."""
    try:
        yield
    except Exception as exc:
        log.error("the limits' counters failed: %s", exc)
        raise StoreUnavailable(
            "rate limits cannot be checked: the store's database is unreachable; retry shortly", retry_after=1
        ) from exc


def check_model(limits: KeyLimits, asked: str, model: ServedModel) -> None:
    """403 unless an allow-list pattern matches the asked name, the served model's id or one of its names."""
    if not limits.models:
        return
    names = (asked, model.id, *model.exact_aliases)
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in limits.models for name in names):
        return
    allowed = ", ".join(limits.models)
    raise PermissionDenied(f"this API key may not use model {asked}; it may use: {allowed}")


def check_expiry(limits: KeyLimits, now: datetime) -> None:
    """401 once the key has expired (the store refuses it at authentication too; this covers a key that
    expires while the server still holds it)."""
    if limits.expires_at is not None and now >= limits.expires_at:
        stamp = limits.expires_at.isoformat(timespec="seconds")
        raise InvalidCredentials(f"API key expired at {stamp}; ask the server's operator for a new key")


def _settles(limits: KeyLimits) -> bool:
    """Whether a request's end changes the key's counters (requests per minute alone count at admission)."""
    return any(limit is not None for limit in (limits.concurrency, limits.tokens_per_minute, limits.quota_tokens))


def _encoded(decided: tuple[KeyState, Verdict]) -> tuple[str, Verdict]:
    return decided[0].dumps(), decided[1]


def _refusal(verdict: Verdict, limits: KeyLimits, now: float, headers: dict[str, str]) -> RateLimited:
    wait = None if verdict.retry_at is None else max(1, math.ceil(verdict.retry_at - now))
    after = f"retry after {wait} s (the retry-after header)" if wait is not None else "ask for a larger quota"
    if verdict.refused == "quota":
        resets = "never" if verdict.retry_at is None else _rfc3339(verdict.retry_at)
        window = f" per {limits.quota_window_seconds} s" if limits.quota_window_seconds else ""
        quota = f"this key's quota of {limits.quota_tokens} tokens{window} is used up"
        return QuotaExceeded(f"usage limit exceeded: {quota}, resets at {resets}", retry_after=wait, headers=headers)
    what = {
        "requests": f"{limits.requests_per_minute} requests per minute",
        "tokens": f"{limits.tokens_per_minute} tokens per minute (input + output)",
        "concurrency": f"{limits.concurrency} requests at once",
    }[verdict.refused or "requests"]
    return RateLimited(f"rate limit exceeded: this key allows {what}; {after}", retry_after=wait, headers=headers)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(math.ceil(epoch), UTC).isoformat().replace("+00:00", "Z")
