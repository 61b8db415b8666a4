"""An upstream that misbehaves never looks like success (engines/upstream_stream.py): each fault is a typed
upstream error, 502 `api_error` (or 529 / 504) before the first byte and an `error` event after it, on the
stream and non-stream paths alike, with a message that says what the upstream did; the next request
succeeds. Scripted upstreams on loopback; the connect timeout uses a real listener that never accepts."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolecall.settings import ModelConfig, Settings
from tests.support import vllm_streams as vllm
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.support.upstream import Raw, ScriptedUpstream, Status, serving
from tests.support.waiting import wait_until

# Short, but not so short that a loaded machine misses it (the upstream is a thread of this process).
FIRST_BYTE_TIMEOUT = 3.0
BODY = {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]}


def sse(*chunks: dict[str, Any]) -> list[bytes | float]:
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]


TEXT = [vllm.chunk({"role": "assistant", "content": ""}), vllm.chunk({"content": "The answer is"})]
# (answer, HTTP status before any text, what the message must say, text streamed before the error)
FAULTS = {
    "200-json-not-sse": (
        Raw([b'{"choices":[{"message":{"content":"hi"}}]}'], content_type="application/json"),
        "the upstream answered 200 with application/json instead of an event stream",
        "",
    ),
    "200-json-error": (
        Raw([b'{"error":{"message":"model is loading"}}'], content_type="application/json"),
        "instead of an event stream: 'model is loading'",
        "",
    ),
    "empty-stream": (Raw([]), "ended after 0 chunk(s) without a finish_reason or [DONE]", ""),
    "only-done": (Raw([b"data: [DONE]\n\n"]), "ended its stream ([DONE]) without sending any chunk", ""),
    "cut-off": (Raw(sse(*TEXT)), "ended after 2 chunk(s) without a finish_reason or [DONE]", "The answer is"),
    "garbage-first": (Raw([b"data: {not json\n\n"]), "sent a `data:` line that is not JSON: '{not json'", ""),
    "garbage-mid": (
        Raw([*sse(*TEXT), b"data: <html>502 Bad Gateway</html>\n\n"]),
        "not JSON: '<html>502 Bad Gateway</html>'",
        "The answer is",
    ),
    "not-an-object": (Raw([b"data: [1, 2]\n\n"]), "is not a JSON object: '[1, 2]'", ""),
    "wrong-shape": (Raw([b'data: {"choices": "none"}\n\n']), "not a chat completion chunk", ""),
}


@pytest.fixture(scope="module")
def url(upstream: tuple[ScriptedUpstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = ModelConfig(
        id="minimax-m2",
        aliases=["MiniMax-M2.7"],
        engine="openai",
        upstreams=[upstream[1]],
        first_byte_timeout=FIRST_BYTE_TIMEOUT,
        health_interval=0.2,
    )
    with running_server(Settings(models=[model], data_dir=tmp_path_factory.mktemp("faults"))) as base:
        yield base


@pytest.fixture
def app(upstream: tuple[ScriptedUpstream, str]) -> Iterator[ScriptedUpstream]:
    scripted = upstream[0]
    yield scripted
    scripted.answers.clear()
    scripted.count_answer = None
    scripted.fail_with = None


def outcome(url: str, stream: bool) -> tuple[int, str, str, str]:
    """(status, error type, error message, text streamed before it); ('', '') for the error of a success."""
    response = httpx.post(url + "/v1/messages", json={**BODY, "stream": stream}, timeout=30)
    if response.status_code != 200:
        error = response.json()["error"]
        return response.status_code, error["type"], error["message"], ""
    if not stream:
        text = "".join(b["text"] for b in response.json()["content"] if b["type"] == "text")
        return 200, "", "", text
    events = check_stream(response.content)
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    last = events[-1]
    if last["type"] == "error":
        return 200, last["error"]["type"], last["error"]["message"], text
    return 200, "", "", text


def succeeds(url: str) -> None:
    for stream in (False, True):
        assert outcome(url, stream) == (200, "", "", "Hello there."), "the request after a fault must succeed"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_bad_answer_is_an_upstream_error(url: str, app: ScriptedUpstream, fault: str, stream: bool) -> None:
    answer, said, text_first = FAULTS[fault]
    app.enqueue(answer)
    status, kind, message, text = outcome(url, stream)
    assert kind == "api_error" and said in message, message
    if text_first and stream:
        assert status == 200 and text == text_first  # the 200 was out: an `error` event ends the stream
    else:
        assert status == 502 and text == ""
    assert "127.0.0.1" not in message  # upstream addresses are internal
    succeeds(url)


def test_a_bad_count_answer_is_an_upstream_error(url: str, app: ScriptedUpstream) -> None:
    app.count_answer = Raw([b"<html>oops</html>"], content_type="text/html")
    counted = httpx.post(url + "/v1/messages/count_tokens", json=BODY, timeout=30)
    assert counted.status_code == 502 and counted.json()["error"]["type"] == "api_error"
    assert (
        "the upstream's /tokenize answer is not a JSON object: '<html>oops</html>'"
        in counted.json()["error"]["message"]
    )
    for stream in (False, True):  # a message whose stream tells its prompt's size needs no count
        assert outcome(url, stream) == (200, "", "", "Hello there.")
    app.count_answer = Raw([b'{"tokens": []}'], content_type="application/json")  # JSON, but no `count`
    counted = httpx.post(url + "/v1/messages/count_tokens", json=BODY, timeout=30)
    assert counted.status_code == 502 and "lacks what rolecall reads" in counted.json()["error"]["message"]
    app.count_answer = None
    succeeds(url)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_no_first_byte_in_time_is_504(url: str, app: ScriptedUpstream, stream: bool) -> None:
    app.enqueue(Raw(sse(*vllm.text_reply("Too late.")), head_delay=FIRST_BYTE_TIMEOUT + 2))
    status, kind, message, text = outcome(url, stream)
    # A stream commits to its 200 after 1 s of engine silence (EARLY_FAILURE_WINDOW): then an `error` event.
    assert (status, kind, text) == (200 if stream else 504, "timeout_error", "")
    assert "did not start answering within 3 s (first_byte_timeout)" in message
    succeeds(url)


def test_one_failed_request_does_not_flap_health(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Status(500, {"error": {"message": "CUDA error"}}))
    assert outcome(url, False)[:2] == (502, "api_error")
    health = httpx.get(url + "/health").json()
    assert (health["status"], health["models"]) == ("ok", {"minimax-m2": "ok"})
    assert set(health["replicas"]["minimax-m2"].values()) == {"up"}  # the probe decides, not one request
    succeeds(url)
    app.healthy = False  # the probe is what takes a model down: two failed probes in a row
    try:
        assert wait_until(lambda: httpx.get(url + "/health").status_code == 503)
        health = httpx.get(url + "/health").json()
        assert (health["status"], health["models"]) == ("unavailable", {"minimax-m2": "unavailable"})
        assert set(health["replicas"]["minimax-m2"].values()) == {"down"}
    finally:
        app.healthy = True
    assert wait_until(lambda: httpx.get(url + "/health").status_code == 200)


def _black_hole(port: int) -> list[socket.socket]:
    """A listener on `port` whose accept queue is full: the kernel drops new SYNs, so connecting hangs."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    held = [listener]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        held.append(filler)
    return held


def test_a_replica_that_cannot_be_reached_in_time(tmp_path: Path) -> None:
    """Retried on another replica; with none left, 529 with retry-after (the SDKs retry it)."""
    good, doomed = ScriptedUpstream(), ScriptedUpstream()
    with ExitStack() as stack:
        good_url = stack.enter_context(serving(good))
        doomed_stack = stack.enter_context(ExitStack())
        doomed_url = doomed_stack.enter_context(serving(doomed))
        common: dict[str, Any] = {"engine": "openai", "connect_timeout": 0.5, "health_interval": 60}
        models = [
            ModelConfig(id="pair", aliases=["MiniMax-M2.7"], upstreams=[doomed_url, good_url], **common),
            ModelConfig(id="solo", upstreams=[doomed_url], **common),
        ]
        base = stack.enter_context(running_server(Settings(models=models, data_dir=tmp_path)))
        doomed_stack.close()  # the replica's server goes away, and its port stops accepting
        for sock in _black_hole(int(doomed_url.rsplit(":", 1)[1])):
            stack.callback(sock.close)
        for n in range(3):  # new conversations: the balancer sends some to the doomed replica first
            body = {**BODY, "messages": [{"role": "user", "content": f"conversation {n}"}]}
            response = httpx.post(base + "/v1/messages", json=body, timeout=30)
            assert response.status_code == 200 and response.json()["content"][0]["text"] == "Hello there."
        errors = re.search(
            rf'^rolecall_upstream_errors_total{{model="pair",replica="{doomed_url}"}} (\S+)$',
            httpx.get(base + "/metrics").text,
            re.M,
        )
        assert errors and float(errors.group(1)) >= 1, "the doomed replica was tried, and the request retried"
        for stream in (False, True):
            response = httpx.post(base + "/v1/messages", json={**BODY, "model": "solo", "stream": stream}, timeout=30)
            assert response.status_code == 529 and response.headers["retry-after"] == "1"
            error = response.json()["error"]
            assert error["type"] == "overloaded_error"
            assert "could not be reached within 0.5 s (connect_timeout)" in error["message"]
