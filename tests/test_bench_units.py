"""`rolecall bench` pieces that need no server: SSE decoding, dialect readers, percentiles, targets."""

from __future__ import annotations

import io

import pytest

from rolecall.bench.dialects import read_event, read_response, request_body, target
from rolecall.bench.progress import ProgressBar, ProgressLines, progress_for
from rolecall.bench.sse import SSEDecoder
from rolecall.bench.stats import percentiles
from rolecall.bench.workload import Workload

STREAM = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b'event: ping\ndata: {"type":"ping"}\r\n\r\n'
    b'data: {"a":1}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("cut", [1, 2, 7, 13, 50])
def test_sse_decoder_survives_any_split(cut: int) -> None:
    decoder = SSEDecoder()
    found = []
    for start in range(0, len(STREAM), cut):
        found += decoder.feed(STREAM[start : start + cut])
    found += decoder.flush()
    assert found == [b'{"type":"message_start"}', b'{"type":"ping"}', b'{"a":1}', b"[DONE]"]


def test_sse_decoder_flushes_an_unterminated_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {}\n") == []
    assert decoder.flush() == [b"{}"]


@pytest.mark.parametrize(
    ("url", "api", "expected_url", "expected_api"),
    [
        ("http://h:1", None, "http://h:1/v1/messages", "anthropic"),
        ("http://h:1/anthropic", None, "http://h:1/anthropic/v1/messages", "anthropic"),
        ("http://h:1/v1", "openai", "http://h:1/v1/chat/completions", "openai"),
        ("http://h:1/v1/chat/completions", None, "http://h:1/v1/chat/completions", "openai"),
        ("http://h:1/v1/messages", None, "http://h:1/v1/messages", "anthropic"),
    ],
)
def test_target_urls(url: str, api, expected_url: str, expected_api: str) -> None:
    found = target("t", url, api)
    assert (found.url, found.api) == (expected_url, expected_api)


def test_request_bodies_per_dialect() -> None:
    workload = Workload(max_tokens=9, top_k=1, model="m")
    messages = [{"role": "user", "content": "hi"}]
    anthropic = request_body(target("a", "http://h"), workload, messages)
    openai = request_body(target("o", "http://h", "openai", model="other"), workload, messages)
    assert anthropic == {"model": "m", "max_tokens": 9, "messages": messages, "stream": True, "top_k": 1}
    assert openai["model"] == "other" and openai["stream_options"] == {"include_usage": True}


def test_readers() -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 3, "cache_read_input_tokens": 4}}}
    assert read_event("anthropic", start).input_tokens == 7
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
    assert read_event("anthropic", delta).text == "hi"
    assert read_event("anthropic", {"type": "message_delta", "usage": {"output_tokens": 5}}).output_tokens == 5
    assert read_event("anthropic", {"type": "error", "error": {"type": "x"}}).error
    chunk = {"choices": [{"delta": {"content": "yo"}}], "usage": {"completion_tokens": 2, "prompt_tokens": 8}}
    assert read_event("openai", chunk) == read_event("openai", chunk)
    assert (read_event("openai", chunk).text, read_event("openai", chunk).output_tokens) == ("yo", 2)
    whole = {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 1, "output_tokens": 2}}
    assert (read_response("anthropic", whole).text, read_response("anthropic", whole).output_tokens) == ("ok", 2)
    assert read_response("anthropic", {"type": "error", "error": {"message": "no"}}).error


def test_percentiles_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "mean": 50.5}
    assert percentiles([0.002]) == {"p50": 2.0, "p90": 2.0, "p99": 2.0, "mean": 2.0}
    assert percentiles([]) is None


def test_workload_prompt_length_and_uniqueness() -> None:
    workload = Workload(prompt_tokens=100)
    first, second = workload.first_message("a"), workload.first_message("b")
    assert first != second
    assert 90 <= len(first.split()) <= 110


def test_progress_bar_draws_only_when_enabled() -> None:
    shown, hidden = io.StringIO(), io.StringIO()
    for stream, enabled in ((shown, True), (hidden, False)):
        bar = ProgressBar(2, enabled=enabled, stream=stream)
        bar.stage("x c=1")
        bar.advance(True)
        bar.advance(False)
        bar.close()
    assert "2/2 1 errors  x c=1" in shown.getvalue()
    assert hidden.getvalue() == ""


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_on_a_non_terminal_at_stages_every_interval_and_at_the_end() -> None:
    stream, clock = io.StringIO(), _Clock()
    lines = ProgressLines(4, stream=stream, interval=10.0, clock=clock)
    lines.stage("rolecall c=1 round 1/1")
    lines.advance(True)
    clock.now += 9
    lines.tick()  # within the interval: quiet
    clock.now += 3
    lines.tick()  # past it: a line, though no request finished since
    lines.advance(False)
    clock.now += 20
    lines.tick()  # a slow request: still a line every interval
    lines.advance(True)
    lines.stage("llama.cpp c=1 round 1/1")
    clock.now += 3
    lines.advance(True)
    lines.tick()
    lines.close()
    assert stream.getvalue().splitlines() == [
        "bench: 0/4 requests, 0 s  [rolecall c=1 round 1/1]",
        "bench: 1/4 requests, 12 s  [rolecall c=1 round 1/1]",
        "bench: 2/4 requests, 1 failed, 32 s  [rolecall c=1 round 1/1]",
        "bench: 3/4 requests, 1 failed, 32 s  [llama.cpp c=1 round 1/1]",
        "bench: 4/4 requests, 1 failed, 35 s  [done]",
    ]
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()  # plain text for logs


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_default_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    assert isinstance(progress_for(3, None, _Terminal()), ProgressBar)
    assert isinstance(progress_for(3, None, io.StringIO()), ProgressLines)
    assert isinstance(progress_for(3, True, io.StringIO()), ProgressBar)
    silent = io.StringIO()
    quiet = progress_for(3, False, silent)
    quiet.stage("x")
    quiet.advance(True)
    quiet.tick()
    quiet.close()
    assert silent.getvalue() == ""
