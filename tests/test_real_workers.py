"""`rolecall serve --workers 2` as users run it, with the bundled model: one embedded engine for both
workers, each worker answers on the one port, /metrics on either sums both, a killed worker is replaced,
and SIGTERM stops everything with exit 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.real_checks import metric_sample
from tests.support.server import free_port
from tests.support.sse import check_stream
from tests.support.waiting import wait_until

BODY = {"model": "MiniMax-M2.7", "max_tokens": 4, "top_k": 1, "messages": [{"role": "user", "content": "Hi"}]}


def _children(pid: int, kind: str) -> list[int]:
    """The parent's child processes running module `kind` (`worker_process` or `llamacpp_worker`)."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        children = [int(child) for child in handle.read().split()]
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if kind.encode() in command:
            found.append(child)
    return found


def _answers(url: str) -> bool:
    # A fresh connection each time: whichever worker accepts it answers.
    response = httpx.post(url + "/v1/messages", json=BODY, timeout=120)
    assert response.status_code == 200, response.text
    return bool(response.json()["type"] == "message")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    # A grace period far beyond the stream's length: on a busy shared machine a few tokens can take many seconds.
    env = {
        **os.environ,
        "ROLECALL_DATA_DIR": str(tmp_path_factory.mktemp("workers-data")),
        "ROLECALL_SHUTDOWN_GRACE": "240",
        # One slot for the model, across both workers; a request that cannot get it is refused after 5 s.
        "ROLECALL_MAX_IN_FLIGHT": "1",
        "ROLECALL_QUEUE_WAIT": "5",
    }
    env.pop("ROLECALL_API_KEYS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _healthy(url), timeout=180), "rolecall --workers 2 did not come up"
        assert wait_until(lambda: len(_children(server.pid, "worker_process")) == 2)
        yield url, server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_one_engine_serves_both_workers_and_each_worker_answers(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, server = served
    assert len(_children(server.pid, "llamacpp_worker")) == 1, "one embedded engine, not one per worker"
    workers = _children(server.pid, "worker_process")
    for frozen, serving in (workers, reversed(workers)):
        # One listening socket, one accept queue: while one worker is stopped, the other takes every connection.
        os.kill(frozen, signal.SIGSTOP)
        try:
            assert _answers(url), f"worker {serving} answers while worker {frozen} is stopped"
        finally:
            os.kill(frozen, signal.SIGCONT)
    # Each worker served one message: a scrape on either one sees both.
    for _ in range(2):
        text = httpx.get(url + "/metrics", timeout=30).text
        assert metric_sample(text, "rolecall_requests_total", route="/v1/messages", status="200") == 2


def test_a_killed_worker_is_replaced_and_sigterm_stops_everything(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, server = served
    engine = _children(server.pid, "llamacpp_worker")
    killed, other = _children(server.pid, "worker_process")
    # The one slot (max_in_flight = 1) is held by a stream on the worker about to be killed: the other is
    # stopped while the stream starts, so the killed worker is the one that accepted it.
    body = {**BODY, "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": "Tell me a story."}]}
    os.kill(other, signal.SIGSTOP)
    try:
        with httpx.stream("POST", url + "/v1/messages", json=body, timeout=120) as response:
            chunks = response.iter_bytes()
            next(chunks)
            os.kill(killed, signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                for _ in chunks:
                    pass
    finally:
        os.kill(other, signal.SIGCONT)
    assert wait_until(
        lambda: killed not in (now := _children(server.pid, "worker_process")) and len(now) == 2, timeout=60
    ), "the parent starts a new worker"
    assert _answers(url), "the killed worker's slot came back (else: 529 after queue_wait)"
    assert _children(server.pid, "llamacpp_worker") == engine, "the engine outlives a worker"
    body = {**body, "max_tokens": 8}
    with httpx.stream("POST", url + "/v1/messages", json=body, timeout=120) as response:
        raw = b""
        for chunk in response.iter_bytes():
            if not raw:
                # As systemd stops a service: SIGTERM to every process of the group at once. Each worker hears of
                # the stop twice (its own signal, the parent's word) and must still count it as one: drain.
                # A worker with nothing in flight may already have drained and exited on the parent's word
                # before its own signal is sent (the stop wakes the server at once): no process, no signal.
                for pid in [server.pid, *_children(server.pid, "worker_process")]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            raw += chunk
    assert check_stream(raw)[-1]["type"] == "message_stop", "the in-flight stream was allowed to finish"
    assert server.wait(timeout=60) == 0
    output = server.stdout.read() if server.stdout else ""
    assert "exited with code -9; starting another" in output and "Traceback" not in output, output
