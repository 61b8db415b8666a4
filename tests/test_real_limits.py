"""Per-key limits on the real model through the official SDKs and raw HTTP, on the three doors: 429 with
MiniMax's codes, `retry-after` and Anthropic's rate-limit headers; the quota's reset; the model allow-list's
403; expiry's 401; and the rate-limit headers on every response of a limited key (200s and streams too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest

from rolecall.core.caller import KeyLimits
from rolecall.service.runtime import build_registry
from rolecall.settings import Settings, default_models
from rolecall.store.database import database_url
from tests.real_checks import MODEL, body
from tests.support.server import running_server
from tests.support.store_keys import create_keys
from tests.support.waiting import wait_until

RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
KEYS = {
    "rpm-anthropic": KeyLimits(requests_per_minute=1),
    "rpm-openai": KeyLimits(requests_per_minute=1),
    "rpm-minimax": KeyLimits(requests_per_minute=1),
    "tpm": KeyLimits(tokens_per_minute=1),
    "quota": KeyLimits(quota_tokens=1, quota_window_seconds=3),
    "roomy": KeyLimits(requests_per_minute=1000, tokens_per_minute=1_000_000),
    "models": KeyLimits(models=("gpt-*",)),
    "expired": KeyLimits(requests_per_minute=10, expires_at=datetime.now(UTC) - timedelta(minutes=1)),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The real model behind a server whose store holds `KEYS` (created before it starts): URL, name -> key."""
    data_dir = tmp_path_factory.mktemp("limits")
    keys = create_keys(database_url(None, data_dir), KEYS)
    settings = Settings(
        data_dir=data_dir, models=[model.model_copy(update={"threads": 1}) for model in default_models()]
    )
    with running_server(settings, build_registry(settings.models)) as base:
        yield base, keys


@pytest.fixture(scope="module")
def url(served: tuple[str, dict[str, str]]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def keys(served: tuple[str, dict[str, str]]) -> dict[str, str]:
    return served[1]


def _anthropic(url: str, key: str, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=retries, timeout=60)


def _openai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}], **extra}


def _ask(client: anthropic.Anthropic) -> Any:
    return client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
    )


def _assert_standing(headers: httpx.Headers, kind: str, limit: int, remaining: int) -> None:
    assert headers[f"anthropic-ratelimit-{kind}-limit"] == str(limit)
    assert headers[f"anthropic-ratelimit-{kind}-remaining"] == str(remaining)
    assert datetime.fromisoformat(headers[f"anthropic-ratelimit-{kind}-reset"]) > datetime.now(UTC) - timedelta(
        seconds=1
    )


def _admitted_then_refused(attempt: Callable[[], Any], kind: str, first: Any = None) -> tuple[Any, Any]:
    """Call `attempt` (it returns the admitted response, or raises the SDK's RateLimitError) until it is
    refused: the last admitted response (`first`, if given, was one) and the refusal. A window that turns
    between two calls lets the second in too; its reset header then names a later window (else the limit
    was broken)."""
    reset = f"anthropic-ratelimit-{kind}-reset"
    last = first if first is not None else attempt()
    for _ in range(3):
        try:
            admitted = attempt()
        except (anthropic.RateLimitError, openai.RateLimitError) as refused:
            return last, refused
        assert admitted.headers[reset] != last.headers[reset], "admitted twice within one window"
        last = admitted
    raise AssertionError("never refused")


def test_requests_per_minute_on_the_anthropic_door(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["rpm-anthropic"])
    first, refused = _admitted_then_refused(lambda: _ask(client), "requests")
    _assert_standing(first.headers, "requests", 1, 0)
    response = refused.response
    assert response.headers["x-should-retry"] == "true"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    _assert_standing(response.headers, "requests", 1, 0)
    error = response.json()
    assert error["error"]["type"] == "rate_limit_error"
    assert error["base_resp"]["status_code"] == 1002
    assert "1 requests per minute" in error["error"]["message"]


def test_requests_per_minute_on_the_openai_door(url: str, keys: dict[str, str]) -> None:
    client = _openai(url, keys["rpm-openai"])
    first, refused = _admitted_then_refused(
        lambda: client.chat.completions.with_raw_response.create(**_chat()), "requests"
    )
    _assert_standing(first.headers, "requests", 1, 0)
    assert refused.response.json()["base_resp"]["status_code"] == 1002
    assert int(refused.response.headers["retry-after"]) >= 1


def test_requests_per_minute_on_the_minimax_door(url: str, keys: dict[str, str]) -> None:
    headers = {"authorization": f"Bearer {keys['rpm-minimax']}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:

        def attempt() -> httpx.Response:
            response = client.post("/v1/text/chatcompletion_v2", json=_chat())
            assert response.status_code == 200  # MiniMax's native form: errors too
            if response.json()["base_resp"]["status_code"] != 0:
                raise openai.RateLimitError("refused", response=response, body=response.json())
            return response

        _, refused = _admitted_then_refused(attempt, "requests")
    assert refused.response.json()["base_resp"]["status_code"] == 1002
    _assert_standing(refused.response.headers, "requests", 1, 0)


def test_tokens_per_minute_count_what_was_served(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["tpm"])
    first, refused = _admitted_then_refused(lambda: _ask(client), "tokens")
    _assert_standing(first.headers, "tokens", 1, 1)  # nothing served yet when it was admitted
    _assert_standing(refused.response.headers, "tokens", 1, 0)
    assert "1 tokens per minute" in refused.message


def test_quota_refuses_with_2056_then_resets_and_the_sdk_retry_gets_through(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["quota"])
    _, refused = _admitted_then_refused(lambda: _ask(client), "tokens")
    error = refused.response.json()
    assert error["base_resp"]["status_code"] == 2056
    assert error["error"]["message"].startswith("usage limit exceeded")
    assert "resets at " in error["error"]["message"]
    assert 1 <= int(refused.response.headers["retry-after"]) <= 3
    # The SDK waits `retry-after` and tries again: the 3-second window closes meanwhile.
    assert _anthropic(url, keys["quota"], retries=3).messages.create(
        model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
    )


def test_quota_resets_when_its_window_closes(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": keys["quota"]}, timeout=60) as client:

        def attempt() -> httpx.Response:
            response = client.post("/v1/messages", json=body("Hi", 1))
            if response.status_code == 429:
                raise anthropic.RateLimitError("refused", response=response, body=response.json())
            assert response.status_code == 200, response.text
            return response

        opened: list[httpx.Response] = []  # the previous test may have left the window spent
        assert wait_until(lambda: opened.append(client.post("/v1/messages", json=body("Hi", 1))) or
                          opened[-1].status_code == 200, timeout=10)  # fmt: skip
        _, refused = _admitted_then_refused(attempt, "tokens", first=opened[-1])
        closes = datetime.fromisoformat(refused.response.headers["anthropic-ratelimit-tokens-reset"])
        reopened: list[httpx.Response] = []
        assert wait_until(lambda: reopened.append(client.post("/v1/messages", json=body("Hi", 1))) or
                          reopened[-1].status_code == 200, timeout=10)  # fmt: skip
        assert datetime.now(UTC) >= closes - timedelta(seconds=1)  # not before the window said it would close
        _assert_standing(reopened[-1].headers, "tokens", 1, 1)


def _standing(headers: httpx.Headers) -> tuple[str, int, int]:
    """The minute window (its reset time), the requests and the tokens left in it."""
    return (
        headers["anthropic-ratelimit-requests-reset"],
        int(headers["anthropic-ratelimit-requests-remaining"]),
        int(headers["anthropic-ratelimit-tokens-remaining"]),
    )


def test_streams_and_count_tokens_carry_the_standing(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": keys["roomy"]}, timeout=60) as client:
        with client.stream("POST", "/v1/messages", json=body("Hi", 2, stream=True)) as stream:
            assert stream.status_code == 200  # the headers went out before the stream committed
            _assert_standing(stream.headers, "requests", 1000, 999)
            stream.read()
        streamed = _standing(stream.headers)
        counted = client.post("/v1/messages/count_tokens", json=body("Hi", 2))
        assert counted.status_code == 200
        window, requests, tokens = _standing(counted.headers)
        if window == streamed[0]:
            # Counting generates nothing; the stream's tokens counted before its last bytes went out.
            assert requests == 999 and tokens < 1_000_000
        else:
            # A minute window turned in between: the request counted in the old window, and its tokens in
            # whichever window its last bytes went out in (the old one, or this one if it turned mid-stream).
            assert requests == 1000 and tokens <= 1_000_000
        chunks = client.post("/v1/chat/completions", json=_chat(stream=True))
        assert chunks.status_code == 200
        later = _standing(chunks.headers)
        assert later[1] == (requests - 1 if later[0] == window else 999)


@pytest.mark.parametrize("door", ["anthropic", "openai", "minimax", "count_tokens"])
def test_model_outside_the_allow_list_is_403(url: str, keys: dict[str, str], door: str) -> None:
    headers = {"x-api-key": keys["models"]}
    path = {
        "anthropic": "/v1/messages",
        "openai": "/v1/chat/completions",
        "minimax": "/v1/text/chatcompletion_v2",
        "count_tokens": "/v1/messages/count_tokens",
    }[door]
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        response = client.post(path, json=_chat())
    payload = response.json()
    assert payload["base_resp"]["status_code"] == 1004
    if door == "minimax":
        assert response.status_code == 200
        return
    assert response.status_code == 403
    assert payload["error"]["type"] == "permission_error"
    assert "gpt-*" in payload["error"]["message"]


def test_allow_list_refusal_through_the_sdks(url: str, keys: dict[str, str]) -> None:
    with pytest.raises(anthropic.PermissionDeniedError):
        _ask(_anthropic(url, keys["models"]))
    with pytest.raises(openai.PermissionDeniedError):
        _openai(url, keys["models"]).chat.completions.create(**_chat())


def test_expired_key_is_401(url: str, keys: dict[str, str]) -> None:
    with pytest.raises(anthropic.AuthenticationError) as refused:
        _ask(_anthropic(url, keys["expired"]))
    assert "expired" in refused.value.message
