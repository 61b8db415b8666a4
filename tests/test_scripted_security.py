"""Security defaults: CORS off unless an allow-list is configured; keys and bodies never reach the logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.server import free_port, running_server
from tests.support.waiting import wait_until

KEY = "sk-test-secret-4242"
ALLOWED = "https://app.example"
BODY = {"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "canary-body-text"}]}
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type"}


def _serve(data_dir: Path, **settings: object) -> Iterator[str]:
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    with running_server(Settings(data_dir=data_dir, api_keys=[KEY], **settings), registry=registry) as url:
        yield url


@pytest.fixture(scope="module")
def plain_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def cors_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("cors"), cors_origins=[ALLOWED])


def test_cors_is_off_by_default(plain_url: str) -> None:
    preflight = httpx.options(plain_url + "/v1/messages", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    response = httpx.post(plain_url + "/v1/messages", json=BODY, headers={"Origin": ALLOWED, "x-api-key": KEY})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_cors_allow_list(cors_url: str) -> None:
    preflight = httpx.options(cors_url + "/v1/messages", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    other = httpx.options(cors_url + "/v1/messages", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    response = httpx.post(cors_url + "/v1/messages", json=BODY, headers={"Origin": ALLOWED, "x-api-key": KEY})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == ALLOWED
    assert "request-id" in response.headers["access-control-expose-headers"].lower()
    # CORS never replaces auth: an allowed origin without a key is still refused.
    assert httpx.post(cors_url + "/v1/messages", json=BODY, headers={"Origin": ALLOWED}).status_code == 401


def test_keys_and_bodies_never_reach_the_logs(tmp_path: Path) -> None:
    """Everything `rolecall serve --log-level debug` prints (its own loggers, uvicorn's, the root logger,
    stray prints and tracebacks), read from the process itself: no key and no body text in it."""
    config = tmp_path / "rolecall.toml"
    config.write_text('[[models]]\nid = "scripted"\nengine = "scripted"\n')
    port = free_port()
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path)}
    env.pop("ROLECALL_API_KEYS", None)
    command = ["serve", "--port", str(port), "--config", str(config), "--api-key", KEY, "--log-level", "debug"]
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(url + "/health"), timeout=60.0), "the server did not start"
        assert httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": KEY}).status_code == 200
        assert httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": "sk-wrong-9"}).status_code == 401
        bad = {**BODY, "max_tokens": "canary-bad-value"}
        assert httpx.post(url + "/v1/messages", json=bad, headers={"authorization": f"Bearer {KEY}"}).status_code == 400
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        logged = server.stdout.read() if server.stdout else ""
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # The capture works: rolecall's own start-up lines and uvicorn's access log are in it.
    assert "auth: 1 API key(s) required" in logged
    assert '"POST /v1/messages HTTP/1.1" 401' in logged
    for secret in (KEY, "sk-wrong-9", "canary-body-text", "canary-bad-value"):
        assert secret not in logged


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_robustness_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLECALL_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ROLECALL_QUEUE_LENGTH", "5")
    monkeypatch.setenv("ROLECALL_SHUTDOWN_GRACE", "2.5")
    monkeypatch.setenv("ROLECALL_MAX_MESSAGES", "12")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert (settings.queue_length, settings.shutdown_grace, settings.max_messages) == (5, 2.5, 12)
    assert Settings().model_copy().queue_wait == 30.0 and Settings().max_block_chars == 4 * 2**20
