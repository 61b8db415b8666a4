"""engine = "openai" streams over kept-alive connections (engines/upstream_http.py) and sends one request per
message where the stream tells the prompt's size; an upstream that dies mid-stream is a clear error, not a
hang. Scripted upstreams on loopback (uvicorn, and a raw socket for a connection cut mid-chunk)."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rolecall.settings import ModelConfig, Settings
from tests.support import vllm_streams as vllm
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.support.upstream import Raw, ScriptedUpstream, Stream
from tests.support.waiting import wait_until

BODY = {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def url(upstream: tuple[ScriptedUpstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = ModelConfig(id="m", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[upstream[1]], pool_size=4)
    with running_server(Settings(models=[model], data_dir=tmp_path_factory.mktemp("keepalive"))) as base:
        yield base


@pytest.fixture
def app(upstream: tuple[ScriptedUpstream, str]) -> Iterator[ScriptedUpstream]:
    scripted = upstream[0]
    yield scripted
    scripted.answers.clear()
    scripted.requests.clear()
    scripted.chat_ports.clear()
    scripted.no_usage_stats = False


def message(url: str, stream: bool, body: dict = BODY) -> tuple[str, int]:
    """(the reply's text, its input_tokens) through /v1/messages."""
    response = httpx.post(url + "/v1/messages", json={**body, "stream": stream}, timeout=30)
    assert response.status_code == 200, response.text
    if not stream:
        reply = response.json()
        return "".join(b["text"] for b in reply["content"]), reply["usage"]["input_tokens"]
    events = check_stream(response.content)
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    return text, events[0]["message"]["usage"]["input_tokens"]


def metric(url: str, name: str) -> float:
    found = re.search(rf"^{name}{{[^}}]*}} (\S+)$", httpx.get(url + "/metrics").text, re.M)
    assert found, name
    return float(found.group(1))


def test_sequential_messages_share_one_connection(url: str, app: ScriptedUpstream) -> None:
    opened = metric(url, "rolecall_upstream_connections_opened_total")
    for stream in (True, False, True, False):
        assert message(url, stream) == ("Hello there.", 100 + 2)
    assert len(app.chat_ports) == 4 and len(set(app.chat_ports)) == 1, app.chat_ports
    assert metric(url, "rolecall_upstream_connections_opened_total") - opened <= 1
    assert metric(url, "rolecall_upstream_connections_idle") == 1


def test_one_upstream_request_per_message(url: str, app: ScriptedUpstream) -> None:
    """The stream's usage tells the prompt's size: no /tokenize first, and the count is the same."""
    for stream in (True, False):
        assert message(url, stream) == ("Hello there.", 102)
    assert [path for path, _ in app.requests] == ["/v1/chat/completions"] * 2


def test_the_count_is_asked_only_when_needed(url: str, app: ScriptedUpstream) -> None:
    # A stream that does not tell the prompt's size: counted after all, before message_start.
    app.no_usage_stats = True
    assert message(url, True) == ("Hello there.", 102)
    assert [path for path, _ in app.requests] == ["/v1/chat/completions", "/tokenize"]
    # An answer that may reach the end of the context window (4096): the context check needs the count.
    app.no_usage_stats = False
    app.requests.clear()
    assert message(url, False, {**BODY, "max_tokens": 4000}) == ("Hello there.", 102)
    assert [path for path, _ in app.requests] == ["/tokenize", "/v1/chat/completions"]
    assert app.chats()[-1]["max_tokens"] == 4096 - 102  # clamped to the room left


def test_a_stream_that_finished_without_done_is_complete_and_reuses_nothing_broken(
    url: str, app: ScriptedUpstream
) -> None:
    no_done = [f"data: {json.dumps(c)}\n\n".encode() for c in vllm.text_reply("Fine.")]
    app.enqueue(Raw(no_done))
    assert message(url, True)[0] == "Fine."
    assert message(url, True)[0] == "Hello there."  # the next message, on a pooled or fresh connection


def test_a_body_that_ends_late_after_done_still_keeps_its_connection(url: str, app: ScriptedUpstream) -> None:
    """The chunked terminator comes 0.3 s after [DONE]: the reply does not wait for it, the connection does."""
    events = [f"data: {json.dumps(c)}\n\n".encode() for c in vllm.text_reply("Late end.")]
    app.enqueue(Raw([*events, b"data: [DONE]\n\n", 0.3]))
    assert message(url, True)[0] == "Late end."
    assert wait_until(lambda: metric(url, "rolecall_upstream_connections_idle") == 1)
    assert message(url, False)[0] == "Hello there."
    assert len(app.chat_ports) == 2 and len(set(app.chat_ports)) == 1, app.chat_ports


def test_an_upstream_dying_mid_stream_is_an_error_event(url: str, app: ScriptedUpstream) -> None:
    app.enqueue(Stream(vllm.broken_off(), drop=True))
    response = httpx.post(url + "/v1/messages", json={**BODY, "stream": True}, timeout=30)
    events = check_stream(response.content)
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"
    assert message(url, True)[0] == "Hello there."  # the broken connection was not pooled


def test_credentials_in_the_url_are_basic_auth_on_the_stream(
    upstream: tuple[ScriptedUpstream, str], tmp_path: Path
) -> None:
    app, upstream_url = upstream
    with_credentials = upstream_url.replace("http://", "http://reader:p%40ss@")
    model = ModelConfig(id="m", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[with_credentials])
    try:
        with running_server(Settings(models=[model], data_dir=tmp_path)) as base:
            assert message(base, True)[0] == "Hello there."
        assert app.chat_auth[-1] == "Basic " + base64.b64encode(b"reader:p@ss").decode()
    finally:
        app.requests.clear()
        app.chat_ports.clear()


def _cut_mid_chunk(listener: socket.socket) -> None:
    """An upstream that answers its probes, then streams half a chunked frame and closes the connection."""
    models = b'{"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 4096}]}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    usage = b'"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}'  # continuous usage stats
    event = b'data: {"choices":[{"index":0,"delta":{"content":"Half"}}],%s}\n\n' % usage
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            request = conn.recv(65536)
            if request.startswith(b"GET"):
                found = request.startswith((b"GET /v1/models", b"GET /health"))
                body = models if found else b"{}"
                status = b"200 OK" if found else b"404 Not Found"
                conn.sendall(
                    b"HTTP/1.1 %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(body), body)
                )
            else:
                conn.sendall(head + b"%x\r\n" % len(event) + event + b"\r\n" + b'40\r\ndata: {"cho')


def test_a_connection_cut_mid_chunk_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    threading.Thread(target=_cut_mid_chunk, args=(listener,), daemon=True).start()
    upstream = f"http://127.0.0.1:{listener.getsockname()[1]}"
    model = ModelConfig(id="m", aliases=["MiniMax-M2.7"], engine="openai", upstreams=[upstream])
    try:
        with running_server(Settings(models=[model], data_dir=tmp_path)) as base:
            streamed = httpx.post(base + "/v1/messages", json={**BODY, "stream": True}, timeout=30)
            events = check_stream(streamed.content)
            assert events[-1]["type"] == "error" and "closed the connection mid-answer" in str(events[-1])
            assert "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta") == "Half"
            folded = httpx.post(base + "/v1/messages", json=BODY, timeout=30)
            assert folded.status_code == 502 and "closed the connection mid-answer" in folded.text
    finally:
        listener.close()
