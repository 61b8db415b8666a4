"""The ledger survives `kill -9`: load through one store key, kill rolecall mid-way, and every request that got
a complete response is in the ledger exactly once; the database is intact (SQLite: its integrity check from a
new process, which replays the WAL; PostgreSQL: a restarted rolecall serves and records on it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ledger import create_key, integrity, ledger_rows, usage_of
from tests.support.serve_process import ServeProcess
from tests.support.waiting import wait_until

CONFIG = '[[models]]\nid = "scripted"\nengine = "scripted"\n'
BODY = {"model": "scripted", "max_tokens": 16, "messages": [{"role": "user", "content": "tell me a story"}]}
COMPLETE_BEFORE_KILL = 30


class Deployment(ServeProcess):
    """A `rolecall serve` process on a store, started and killed at will."""

    def __init__(self, tmp_path: Path, database_url: str | None) -> None:
        config = tmp_path / "rolecall.toml"
        config.write_text(CONFIG)
        env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path)}
        env.pop("ROLECALL_API_KEYS", None)
        if database_url:
            env["ROLECALL_DATABASE_URL"] = database_url
        super().__init__(config, env, tmp_path / "serve.log")
        self.store_url = database_url or f"sqlite:///{tmp_path / 'rolecall.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    deployed = Deployment(tmp_path, database_url)
    yield deployed
    deployed.stop()


def _one(client: httpx.Client, url: str, turn: int) -> str | None:
    """One request, streamed or not, through one of the doors; its request id if the response was complete."""
    if turn % 3 == 0:
        response = client.post(url + "/v1/messages", json=BODY)
        return response.headers["request-id"] if response.json().get("type") == "message" else None
    path, body = (
        ("/v1/messages", {**BODY, "stream": True})
        if turn % 3 == 1
        else ("/v1/chat/completions", {**BODY, "stream": True})
    )
    with client.stream("POST", url + path, json=body) as response:
        text = "".join(response.iter_text())
        complete = "event: message_stop" in text or "data: [DONE]" in text
        return response.headers["request-id"] if complete else None


def test_every_complete_response_survives_kill_9(deployment: Deployment) -> None:
    key = create_key(deployment.store_url, "loadtest")
    deployment.start()
    completed: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(headers={"x-api-key": key}, timeout=10) as client:
            turn = worker
            while not stop.is_set():
                try:
                    request_id = _one(client, deployment.url, turn)
                except (httpx.HTTPError, ValueError):
                    return  # the server is gone: this request never completed
                if request_id is not None:
                    completed.append(request_id)
                turn += 1

    workers = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    assert wait_until(lambda: len(completed) >= COMPLETE_BEFORE_KILL, timeout=60)
    deployment.kill()  # mid-way: other requests are in flight
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    if deployment.store_url.startswith("sqlite"):
        assert integrity(deployment.store_url) == "ok"
    rows = ledger_rows(deployment.store_url, completed)
    assert sorted(row.request_id for row in rows) == sorted(completed)  # each exactly once
    assert all(row.key == "loadtest" and row.status == 200 and row.output_tokens > 0 for row in rows)

    if deployment.store_url.startswith("sqlite"):
        return  # reading it above from a new process was SQLite's recovery (the WAL replayed); no rolecall needed
    deployment.start()  # the same store, after the crash
    after = httpx.post(deployment.url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=30)
    assert after.status_code == 200
    assert len(ledger_rows(deployment.store_url, [after.headers["request-id"]])) == 1
    # Requests in flight at the kill may have their rows too (committed just before their last bytes).
    assert usage_of(deployment.store_url, "loadtest") >= len(completed) + 1
