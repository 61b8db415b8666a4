"""What operators see: a separate metrics key, an access log without query-string secrets, one line (no
traceback) for a client that leaves mid-body, and upstream URLs without their credentials."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import ModelConfig, Settings, public_url
from tests.support.server import running_server
from tests.support.upstream import ScriptedUpstream, serving
from tests.support.waiting import wait_until

KEY = "sk-api-key-1234"
SCRAPE = "metrics-only-5678"
BODY = {"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


class Recorder(logging.Handler):
    """Every record of one logger, formatted, with its traceback if any."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def recorded() -> Iterator[dict[str, Recorder]]:
    recorders = {name: Recorder() for name in ("uvicorn.access", "uvicorn.error", "rolecall")}
    level = logging.getLogger("rolecall").level
    logging.getLogger("rolecall").setLevel(logging.INFO)  # as `rolecall serve` sets it
    for name, recorder in recorders.items():
        logging.getLogger(name).addHandler(recorder)
    yield recorders
    for name, recorder in recorders.items():
        logging.getLogger(name).removeHandler(recorder)
    logging.getLogger("rolecall").setLevel(level)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    settings = Settings(data_dir=tmp_path, api_keys=[KEY], metrics_key=SCRAPE)
    with running_server(settings, registry=registry, log_level="info") as base:
        yield base


def test_metrics_label_the_docs_assets_by_their_route(url: str) -> None:
    """Swagger UI's files are one mounted route, not "unmatched" (which is for paths no route answers)."""
    auth = {"x-api-key": KEY}
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js"):
        assert httpx.get(f"{url}/docs/assets/{asset}", headers=auth).status_code == 200
    assert httpx.get(url + "/no/such/path", headers=auth).status_code == 404
    metrics = httpx.get(url + "/metrics", headers=auth).text
    assert 'rolecall_requests_total{route="/docs/assets/{path}",status="200"} 2.0' in metrics
    assert 'rolecall_requests_total{route="unmatched",status="404"} 1.0' in metrics


def test_the_metrics_key_reads_metrics_and_nothing_else(url: str) -> None:
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/metrics", headers={"authorization": f"Bearer {SCRAPE}"}).status_code == 200
    assert httpx.get(url + "/metrics", headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(url + "/openapi.json", headers={"x-api-key": SCRAPE}).status_code == 401
    assert httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": SCRAPE}).status_code == 401
    assert httpx.get(url + "/health").json() == {"status": "ok", "models": {"scripted": "ok"}}


def test_query_string_secrets_never_reach_the_access_log(url: str, recorded: dict[str, Recorder]) -> None:
    query = "?key=sk-leak-1&limit=5&api_key=sk-leak-2&token=sk-leak-3&Authorization=sk-leak-4"
    response = httpx.get(url + "/v1/models" + query, headers={"x-api-key": KEY})
    assert response.status_code == 200
    access = recorded["uvicorn.access"]
    assert wait_until(lambda: any("/v1/models" in line for line in access.lines()))
    (line,) = [line for line in access.lines() if "/v1/models" in line]
    assert "key=[redacted]&limit=5&api_key=[redacted]&token=[redacted]&Authorization=[redacted]" in line
    everything = [line for recorder in recorded.values() for line in recorder.lines()]
    assert not [line for line in everything if "sk-leak" in line]


def test_a_client_leaving_mid_body_is_one_line(url: str, recorded: dict[str, Recorder]) -> None:
    parts = urlsplit(url)
    for _ in range(5):
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            head = f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ncontent-length: 1000\r\n\r\n"
            sock.sendall(head.encode() + b'{"model": "scr')
    rolecall = recorded["rolecall"]
    assert wait_until(lambda: len([r for r in rolecall.lines() if "client disconnected" in r]) == 5)
    assert next(r for r in rolecall.lines() if "client disconnected" in r) == (
        "client disconnected while sending its body (14 bytes of 1000)"
    )
    everything = [r for recorder in recorded.values() for r in recorder.records]
    assert not [r for r in everything if r.exc_info or "unexpected" in r.getMessage()]
    assert httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": KEY}).status_code == 200


def test_upstream_credentials_are_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert public_url("http://user:s3cret@gpu-a:8000") == "http://***@gpu-a:8000"
    assert public_url("https://gpu-b/v1") == "https://gpu-b/v1"
    with serving(ScriptedUpstream()) as upstream:
        with_password = upstream.replace("http://", "http://rolecall:s3cret@")
        model = ModelConfig(id="m", engine="openai", upstreams=[with_password], health_interval=0.2)
        with caplog.at_level(logging.INFO), running_server(Settings(models=[model], data_dir=tmp_path)) as base:
            metrics = httpx.get(base + "/metrics").text
    assert f'replica="{upstream}"' in metrics  # the credentials went into basic auth
    assert "s3cret" not in metrics and "s3cret" not in caplog.text
