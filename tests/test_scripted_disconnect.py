"""A client that goes away frees the engine: the generation is closed, not left running (§10)."""

from __future__ import annotations

import httpx
import pytest

from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.engines.fake import ScriptedEngine
from tests.support.sse import parse_frames
from tests.support.waiting import wait_until

BODY = {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
SLOW = [TextChunk("first"), 30.0, TextChunk("never"), 30.0, FinishChunk("stop")]


def test_stream_disconnect_closes_the_generation(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue(SLOW)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", scripted_url + "/v1/messages", json={**BODY, "stream": True}) as response:
            assert response.status_code == 200
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if b"content_block_delta" in received and received.endswith(b"\n\n"):
                    # Checked before leaving the loop: dropping the byte iterator already closes the connection.
                    assert scripted.active == 1
                    break
            kinds = [name for name, _ in parse_frames(received)]
            assert kinds[0] == "message_start" and "content_block_delta" in kinds
        # Leaving the block closes the connection mid-stream.
    assert wait_until(lambda: scripted.active == 0), "the engine stream was not closed after the client left"


def test_stream_disconnect_while_pings_are_flowing(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue(SLOW)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", scripted_url + "/v1/messages", json={**BODY, "stream": True}) as response:
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if received.count(b"event: ping") >= 3:
                    break
    assert wait_until(lambda: scripted.active == 0)


def test_abandoned_non_stream_request_closes_the_generation(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue(SLOW)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(scripted_url + "/v1/messages", json=BODY, timeout=0.5)
    assert len(scripted.requests) == 1, "generation had started"
    assert wait_until(lambda: scripted.active == 0), "the engine stream was not closed after the client left"


def test_server_still_serves_after_a_disconnect(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue(SLOW)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(scripted_url + "/v1/messages", json=BODY, timeout=0.3)
    assert wait_until(lambda: scripted.active == 0)
    scripted.enqueue([TextChunk("ok"), FinishChunk("stop")])
    response = httpx.post(scripted_url + "/v1/messages", json=BODY, timeout=5)
    assert response.status_code == 200 and response.json()["content"] == [{"type": "text", "text": "ok"}]


def _output_tokens(base_url: str) -> float:
    metrics = httpx.get(base_url + "/metrics").text
    samples = [
        line for line in metrics.splitlines() if line.startswith('rolecall_output_tokens_total{model="scripted"}')
    ]
    return float(samples[0].split()[-1]) if samples else 0.0


def test_tokens_of_an_abandoned_stream_are_still_counted(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([TextChunk("one"), TextChunk(" two"), 30.0, TextChunk("never"), FinishChunk("stop")])
    before = _output_tokens(scripted_url)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", scripted_url + "/v1/messages", json={**BODY, "stream": True}) as response:
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if received.count(b"content_block_delta") >= 2 and received.endswith(b"\n\n"):
                    break
    assert wait_until(lambda: scripted.active == 0)
    assert wait_until(lambda: _output_tokens(scripted_url) - before == 2), "generated tokens of a cut stream are lost"
