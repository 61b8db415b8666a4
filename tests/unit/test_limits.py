"""The limits' arithmetic and the limiter over in-process counters, on an injected clock: fixed minute windows,
the rolling quota window, leases that lapse, the headers, and the errors each refusal raises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from rolecall.core.caller import Caller, KeyLimits
from rolecall.core.errors import InvalidCredentials, PermissionDenied, QuotaExceeded, RateLimited, StoreUnavailable
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.limits import UNLIMITED, Limiter, MemoryCounters
from rolecall.service.limits.state import Clocks, KeyState, Window, admit, settle, standing
from rolecall.service.registry import ServedModel

pytestmark = pytest.mark.anyio
CLOCKS = Clocks(window=60.0, lease=120.0)
T0 = 1_800_000_020.0  # 20 s into a minute window (1_800_000_000 is a multiple of 60)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model(id: str = "smollm2", aliases: tuple[str, ...] = ()) -> ServedModel:
    return ServedModel(id, ScriptedEngine(), id, "2024-11-01T00:00:00Z", aliases=list(aliases))


def caller(**limits: object) -> Caller:
    return Caller("k1", "app", KeyLimits(**limits))  # type: ignore[arg-type]


def test_minute_windows_align_to_the_clock() -> None:
    window = Window().current(T0, 60)
    assert window == Window(T0 - 20, 0)
    assert Window(T0 - 20, 5).current(T0 + 39.9, 60).used == 5
    assert Window(T0 - 20, 5).current(T0 + 40, 60) == Window(T0 + 40, 0)


def test_a_late_decision_counts_in_the_newer_window_and_never_resets_it() -> None:
    # Another instance (its clock a little ahead) already opened the next window and spent it.
    limits = KeyLimits(requests_per_minute=3)
    spent = KeyState(requests=Window(T0 + 40, 3))
    _, verdict = admit(spent, limits, T0 + 39.9, "late", CLOCKS)
    assert verdict.refused == "requests" and verdict.retry_at == T0 + 100


def test_rolling_window_opens_at_first_use_and_resets_all_at_once() -> None:
    assert Window().rolling(T0, 300) == Window(T0, 0)
    assert Window(T0, 90).rolling(T0 + 299, 300).used == 90
    assert Window(T0, 90).rolling(T0 + 300, 300) == Window(T0 + 300, 0)


def test_requests_per_minute_admits_exactly_the_limit_then_resets_at_the_window_edge() -> None:
    limits, state = KeyLimits(requests_per_minute=3), KeyState()
    verdicts = []
    for i in range(4):
        state, verdict = admit(state, limits, T0 + i, f"l{i}", CLOCKS)
        verdicts.append(verdict)
    assert [v.refused for v in verdicts] == [None, None, None, "requests"]
    assert [v.requests.remaining for v in verdicts if v.requests] == [2, 1, 0, 0]
    assert verdicts[3].retry_at == T0 + 40 == verdicts[3].requests.resets_at  # type: ignore[union-attr]
    state, verdict = admit(state, limits, T0 + 40, "l4", CLOCKS)
    assert verdict.refused is None and verdict.requests is not None and verdict.requests.remaining == 2


def test_tokens_count_as_served_and_refuse_once_the_minute_is_spent() -> None:
    limits, state = KeyLimits(tokens_per_minute=100), KeyState()
    state, first = admit(state, limits, T0, "a", CLOCKS)
    assert first.refused is None and first.tokens is not None and first.tokens.remaining == 100
    state = settle(state, limits, T0 + 1, "a", 100, CLOCKS)
    state, second = admit(state, limits, T0 + 2, "b", CLOCKS)
    assert second.refused == "tokens" and second.retry_at == T0 + 40
    assert standing(state, limits, T0 + 40, CLOCKS).tokens.remaining == 100  # type: ignore[union-attr]


def test_quota_refuses_until_its_rolling_window_closes() -> None:
    limits, state = KeyLimits(quota_tokens=50, quota_window_seconds=18_000), KeyState()
    state, _ = admit(state, limits, T0, "a", CLOCKS)
    state = settle(state, limits, T0 + 5, "a", 60, CLOCKS)
    state, refused = admit(state, limits, T0 + 3600, "b", CLOCKS)
    assert refused.refused == "quota" and refused.retry_at == T0 + 18_000
    assert refused.tokens is not None and (refused.tokens.limit, refused.tokens.remaining) == (50, 0)
    state, again = admit(state, limits, T0 + 18_000, "c", CLOCKS)
    assert again.refused is None and again.tokens is not None and again.tokens.remaining == 50


def test_token_headers_show_the_tighter_of_tpm_and_quota() -> None:
    limits = KeyLimits(tokens_per_minute=1000, quota_tokens=300, quota_window_seconds=600)
    state = settle(KeyState(), limits, T0, "a", 200, CLOCKS)
    tokens = standing(state, limits, T0 + 1, CLOCKS).tokens
    assert tokens is not None and (tokens.limit, tokens.remaining, tokens.resets_at) == (300, 100, T0 + 600)


def test_concurrency_leases_are_returned_and_lapse_when_their_holder_is_gone() -> None:
    limits, state = KeyLimits(concurrency=1), KeyState()
    state, first = admit(state, limits, T0, "a", CLOCKS)
    state, second = admit(state, limits, T0 + 1, "b", CLOCKS)
    assert first.refused is None and second.refused == "concurrency"
    freed = settle(state, limits, T0 + 2, "a", 10, CLOCKS)
    assert admit(freed, limits, T0 + 3, "c", CLOCKS)[1].refused is None
    # Never returned (its instance crashed): the lease lapses after `CLOCKS.lease` seconds.
    assert admit(state, limits, T0 + 119, "d", CLOCKS)[1].refused == "concurrency"
    assert admit(state, limits, T0 + 120, "d", CLOCKS)[1].refused is None


def test_state_round_trips_through_its_record() -> None:
    state = KeyState(Window(60.0, 2), Window(60.0, 40), Window(T0, 7), {"a": T0 + 1})
    assert KeyState.loads(state.dumps()) == state
    assert KeyState.loads(None) == KeyState()


async def test_limiter_raises_429_with_headers_and_retry_after() -> None:
    clock = Clock()
    limiter = Limiter(MemoryCounters(), CLOCKS, clock)
    key = caller(requests_per_minute=1)
    ticket = await limiter.admit(key, "smollm2", model())
    assert ticket.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert ticket.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert ticket.headers["anthropic-ratelimit-requests-reset"] == "2027-01-15T08:01:00Z"
    await ticket.finish(5)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(key, "smollm2", model())
    error = refused.value
    assert (error.status, error.code, error.error_type) == (429, 1002, "rate_limit_error")
    assert error.headers()["retry-after"] == "40"
    assert error.headers()["anthropic-ratelimit-requests-remaining"] == "0"
    assert "1 requests per minute" in error.message
    clock.now += 40
    await (await limiter.admit(key, "smollm2", model())).finish(1)


async def test_quota_refusal_is_code_2056_and_says_when_it_resets() -> None:
    clock = Clock()
    limiter = Limiter(MemoryCounters(), CLOCKS, clock)
    key = caller(quota_tokens=10, quota_window_seconds=2)
    await (await limiter.admit(key, "smollm2", model())).finish(11)
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.admit(key, "smollm2", model())
    assert (refused.value.status, refused.value.code) == (429, 2056)
    assert refused.value.message.startswith("usage limit exceeded: ")
    assert refused.value.message.endswith("resets at 2027-01-15T08:00:22Z")
    assert refused.value.headers()["retry-after"] == "2"
    clock.now += 2
    assert (await limiter.admit(key, "smollm2", model())).headers["anthropic-ratelimit-tokens-remaining"] == "10"


async def test_shared_ticket_settles_once_all_its_generations_finish() -> None:
    clock = Clock()
    limiter = Limiter(MemoryCounters(), CLOCKS, clock)
    key = caller(concurrency=1, tokens_per_minute=100)
    ticket = (await limiter.admit(key, "smollm2", model())).share(2)
    await ticket.finish(30)
    with pytest.raises(RateLimited):  # one of its two generations still runs: the lease is held
        await limiter.admit(key, "smollm2", model())
    await ticket.finish(20)
    after = await limiter.admit(key, "smollm2", model())
    assert after.headers["anthropic-ratelimit-tokens-remaining"] == "50"
    await after.finish(0)
    await limiter.close()


@pytest.mark.parametrize(
    "patterns, asked, allowed",
    [
        (("smollm2*",), "smollm2", True),
        (("claude-*",), "claude-sonnet-4-5", True),  # the asked name
        (("smollm2",), "claude-sonnet-4-5", True),  # the served model's id
        (("tiny",), "claude-sonnet-4-5", True),  # one of its exact aliases
        (("gpt-*",), "smollm2", False),
    ],
)
async def test_model_allow_list(patterns: tuple[str, ...], asked: str, allowed: bool) -> None:
    limiter = Limiter(MemoryCounters(), CLOCKS, Clock())
    served = model("smollm2", aliases=("tiny", "claude-*"))
    key = caller(models=patterns)
    if allowed:
        assert await limiter.admit(key, asked, served) is UNLIMITED  # an allow-list alone counts nothing
        return
    with pytest.raises(PermissionDenied) as refused:
        await limiter.admit(key, asked, served)
    assert (refused.value.status, refused.value.code, refused.value.error_type) == (403, 1004, "permission_error")
    assert "gpt-*" in refused.value.message


async def test_expired_key_is_refused_as_401() -> None:
    limiter = Limiter(MemoryCounters(), CLOCKS, Clock())
    with pytest.raises(InvalidCredentials, match="expired"):
        await limiter.admit(caller(expires_at=datetime.now(UTC) - timedelta(seconds=1)), "smollm2", model())


async def test_unlimited_key_touches_no_counter() -> None:
    counters = MemoryCounters()
    limiter = Limiter(counters, CLOCKS, Clock())
    assert await limiter.admit(Caller("k2"), "smollm2", model()) is UNLIMITED
    assert await limiter.peek(Caller("k2"), "smollm2", model()) == {}
    assert await counters.read("config:k2") is None


async def test_leases_are_renewed_while_their_requests_run() -> None:
    clock = Clock()
    limiter = Limiter(MemoryCounters(), Clocks(window=60, lease=0.15), clock)
    key = caller(concurrency=1)
    ticket = await limiter.admit(key, "smollm2", model())
    for _ in range(3):  # several renewal periods of real time on the event loop, the lease's clock following
        await asyncio.sleep(0.1)
        clock.now += 0.1
    with pytest.raises(RateLimited):
        await limiter.admit(key, "smollm2", model())
    await ticket.finish(0)
    await limiter.close()


class BrokenCounters(MemoryCounters):
    async def update(self, key: str, change: object) -> object:  # type: ignore[override]
        raise ConnectionError("the database went away")


async def test_counters_that_fail_refuse_with_503_and_a_lost_count_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters = MemoryCounters()
    limiter = Limiter(counters, CLOCKS, Clock())
    key = caller(tokens_per_minute=100)
    ticket = await limiter.admit(key, "smollm2", model())
    limiter.counters = BrokenCounters()
    await ticket.finish(10)  # the response is complete: nothing raised
    assert "could not count" in caplog.text
    with pytest.raises(StoreUnavailable) as refused:
        await limiter.admit(key, "smollm2", model())
    assert refused.value.status == 503 and refused.value.headers()["retry-after"] == "1"
