"""Per-key limits on the real model through the official SDKs and raw HTTP, on the three doors: 429 with
MiniMax's codes, `retry-after` and Anthropic's rate-limit headers; the quota's reset; the model allow-list's
403; expiry's 401; and the rate-limit headers on every response of a limited key (200s and streams too)."""

from __future__ import annotations

from collections.abc import Iterator
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


def test_requests_per_minute_on_the_anthropic_door(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["rpm-anthropic"])
    first = _ask(client)
    _assert_standing(first.headers, "requests", 1, 0)
    with pytest.raises(anthropic.RateLimitError) as refused:
        _ask(client)
    response = refused.value.response
    assert response.headers["x-should-retry"] == "true"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    _assert_standing(response.headers, "requests", 1, 0)
    error = response.json()
    assert error["error"]["type"] == "rate_limit_error"
    assert error["base_resp"]["status_code"] == 1002
    assert "1 requests per minute" in error["error"]["message"]


def test_requests_per_minute_on_the_openai_door(url: str, keys: dict[str, str]) -> None:
    client = _openai(url, keys["rpm-openai"])
    first = client.chat.completions.with_raw_response.create(**_chat())
    _assert_standing(first.headers, "requests", 1, 0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**_chat())
    assert refused.value.response.json()["base_resp"]["status_code"] == 1002
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_requests_per_minute_on_the_minimax_door(url: str, keys: dict[str, str]) -> None:
    headers = {"authorization": f"Bearer {keys['rpm-minimax']}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        first = client.post("/v1/text/chatcompletion_v2", json=_chat())
        assert first.json()["base_resp"]["status_code"] == 0
        refused = client.post("/v1/text/chatcompletion_v2", json=_chat())
    assert refused.status_code == 200  # MiniMax's native error form
    assert refused.json()["base_resp"]["status_code"] == 1002
    _assert_standing(refused.headers, "requests", 1, 0)


def test_tokens_per_minute_count_what_was_served(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["tpm"])
    first = _ask(client)
    _assert_standing(first.headers, "tokens", 1, 1)  # nothing served yet when it was admitted
    with pytest.raises(anthropic.RateLimitError) as refused:
        _ask(client)
    _assert_standing(refused.value.response.headers, "tokens", 1, 0)
    assert "1 tokens per minute" in refused.value.message


def test_quota_refuses_with_2056_then_resets_and_the_sdk_retry_gets_through(url: str, keys: dict[str, str]) -> None:
    client = _anthropic(url, keys["quota"])
    _ask(client)
    with pytest.raises(anthropic.RateLimitError) as refused:
        _ask(client)
    error = refused.value.response.json()
    assert error["base_resp"]["status_code"] == 2056
    assert error["error"]["message"].startswith("usage limit exceeded")
    assert "resets at " in error["error"]["message"]
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 3
    # The SDK waits `retry-after` and tries again: the 3-second window closes meanwhile.
    assert _anthropic(url, keys["quota"], retries=3).messages.create(
        model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
    )


def test_quota_resets_when_its_window_closes(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": keys["quota"]}, timeout=60) as client:
        assert wait_until(lambda: client.post("/v1/messages", json=body("Hi", 1)).status_code == 200, timeout=10)
        assert client.post("/v1/messages", json=body("Hi", 1)).status_code == 429
        assert wait_until(lambda: client.post("/v1/messages", json=body("Hi", 1)).status_code == 200, timeout=10)


def test_streams_and_count_tokens_carry_the_standing(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": keys["roomy"]}, timeout=60) as client:
        with client.stream("POST", "/v1/messages", json=body("Hi", 2, stream=True)) as stream:
            assert stream.status_code == 200
            _assert_standing(stream.headers, "requests", 1000, 999)
            stream.read()
        counted = client.post("/v1/messages/count_tokens", json=body("Hi", 2))
        assert counted.status_code == 200
        _assert_standing(counted.headers, "requests", 1000, 999)  # counting tokens generates nothing
        chunks = client.post("/v1/chat/completions", json=_chat(stream=True))
        _assert_standing(chunks.headers, "requests", 1000, 998)

        def tokens_left() -> int:
            counted = client.post("/v1/messages/count_tokens", json=body("Hi", 2))
            return int(counted.headers["anthropic-ratelimit-tokens-remaining"])

        # A stream's tokens count once it has ended (its end returns its lease and counts them).
        assert wait_until(lambda: tokens_left() < 1_000_000)


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
