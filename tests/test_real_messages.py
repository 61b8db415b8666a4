"""POST /v1/messages against the real server and the bundled SmolLM2 model: the official SDK and raw HTTP.

Outputs of the model are never hard-coded: tests compare the server with itself (stream vs
non-stream, count_tokens vs usage, greedy text vs the same text cut at a stop sequence).
"""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY
from tests.real_checks import (
    MESSAGE_ID,
    MODEL,
    REQUEST_ID,
    SERVED_ID,
    SUCCESS,
    USAGE_KEYS,
    block_text,
    body,
    count_tokens,
    final_delta,
    post_stream,
    prompt_total,
    sdk_text,
    stream_text,
)
from tests.support.sse import check_stream

GREEDY = {"top_k": 1}
QUESTION = [{"role": "user", "content": "Tell me one fact about the moon."}]


def assert_sdk_message(message: anthropic.types.Message, model: str) -> None:
    assert message.id.startswith("msg_") and MESSAGE_ID.fullmatch(message.id)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert isinstance(message.content, list) and message.content
    assert message.content[0].type == "text"
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.stop_sequence is None
    for key in USAGE_KEYS:
        value = getattr(message.usage, key)
        assert isinstance(value, int) and value >= 0, (key, value)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens >= 1
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 0


# --- 1. shape ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [MODEL, SERVED_ID, "MiniMax-M2.5"])
def test_sdk_create_returns_a_message_echoing_the_requested_model(real_client: anthropic.Anthropic, model: str) -> None:
    message = real_client.messages.create(model=model, max_tokens=8, messages=QUESTION)
    assert_sdk_message(message, model)
    assert REQUEST_ID.fullmatch(message._request_id or "")


def test_sdk_create_under_the_anthropic_prefix(real_url: str) -> None:
    client = anthropic.Anthropic(base_url=real_url + "/anthropic", api_key=API_KEY, max_retries=0, timeout=120)
    message = client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert_sdk_message(message, MODEL)
    assert client.messages.count_tokens(model=MODEL, messages=QUESTION).input_tokens > 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages",
        "/v1/messages?beta=true",
        "/anthropic/v1/messages",
        "/anthropic/v1/messages?beta=true",
        "/v1/messages/",
    ],
)
def test_raw_body_has_base_resp_and_null_stop_sequence(real_http: httpx.Client, path: str) -> None:
    response = real_http.post(path, json=body(max_tokens=8))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.fullmatch(response.headers["request-id"])
    message = response.json()
    assert MESSAGE_ID.fullmatch(message["id"])
    assert message["type"] == "message" and message["role"] == "assistant" and message["model"] == MODEL
    assert "stop_sequence" in message and message["stop_sequence"] is None
    assert message["stop_reason"] in ("end_turn", "max_tokens")
    assert message["base_resp"] == SUCCESS
    assert [block["type"] for block in message["content"]] == ["text"]
    usage = message["usage"]
    for key in USAGE_KEYS:
        assert isinstance(usage[key], int) and not isinstance(usage[key], bool), key
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert 1 <= usage["output_tokens"] <= 8


def test_max_tokens_caps_the_output(real_http: httpx.Client) -> None:
    message = real_http.post("/v1/messages", json=body("Write a long essay about the sea.", max_tokens=3)).json()
    assert message["usage"]["output_tokens"] <= 3
    if message["stop_reason"] == "max_tokens":
        assert message["usage"]["output_tokens"] == 3


@pytest.mark.parametrize(
    "stream, expected",
    [(None, "application/json"), (False, "application/json"), (True, "text/event-stream; charset=utf-8")],
)
def test_only_stream_true_selects_sse(real_http: httpx.Client, stream: bool | None, expected: str) -> None:
    payload = body(max_tokens=4)
    if stream is not None:
        payload["stream"] = stream
    # The SDKs send `Accept: application/json` even when streaming: the body decides.
    response = real_http.post("/v1/messages", json=payload, headers={"accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == expected
    if stream:
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert REQUEST_ID.fullmatch(response.headers["request-id"])
        check_stream(response.content)
    else:
        assert response.json()["base_resp"] == SUCCESS


# --- 2. streaming ------------------------------------------------------------------------------


def test_sdk_stream_final_message(real_client: anthropic.Anthropic, real_http: httpx.Client) -> None:
    with real_client.messages.stream(model=MODEL, max_tokens=12, messages=QUESTION) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert_sdk_message(final, MODEL)
    assert sdk_text(final) == "".join(pieces)
    assert final.usage.output_tokens <= 12
    count = real_client.messages.count_tokens(model=MODEL, messages=QUESTION).input_tokens
    assert (
        final.usage.input_tokens + final.usage.cache_read_input_tokens + final.usage.cache_creation_input_tokens
        == count
    )


def test_raw_stream_message_start_reports_the_counted_prompt(real_http: httpx.Client) -> None:
    payload = {"model": MODEL, "max_tokens": 12, "system": "You are terse.", "messages": QUESTION}
    expected = count_tokens(real_http, payload)
    response, events = post_stream(real_http, payload)
    assert REQUEST_ID.fullmatch(response.headers["request-id"])
    start = events[0]["message"]
    assert MESSAGE_ID.fullmatch(start["id"]) and start["model"] == MODEL
    assert start["stop_reason"] is None and start["stop_sequence"] is None
    assert prompt_total(start["usage"]) == expected  # the cached part, where there is one, already split off
    assert events[1] == {"type": "ping"}, "a ping follows message_start"
    assert events[-1] == {"type": "message_stop"}
    delta = final_delta(events)
    assert prompt_total(delta["usage"]) == expected
    assert 1 <= delta["usage"]["output_tokens"] <= 12
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] == ["text"]


def test_raw_stream_under_the_anthropic_prefix_with_query(real_http: httpx.Client) -> None:
    _, events = post_stream(real_http, body(max_tokens=6), path="/anthropic/v1/messages?beta=true")
    assert events[0]["message"]["model"] == MODEL
    assert final_delta(events)["delta"]["stop_reason"] in ("end_turn", "max_tokens")


# --- 3. greedy determinism ---------------------------------------------------------------------


def test_greedy_stream_equals_non_stream(
    real_client: anthropic.Anthropic, real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    request = dict(model=MODEL, max_tokens=24, messages=QUESTION, extra_body=GREEDY)
    settle()
    real_client.messages.create(**request)  # warm the prompt cache, so every run below starts from the same state
    settle()
    message = real_client.messages.create(**request)
    settle()
    with real_client.messages.stream(**request) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    settle()
    _, events = post_stream(real_http, {"model": MODEL, "max_tokens": 24, "messages": QUESTION, **GREEDY})
    text = sdk_text(message)
    assert text, "the model said nothing"
    assert streamed == text
    assert sdk_text(final) == text
    assert stream_text(events) == text
    assert final.stop_reason == message.stop_reason == final_delta(events)["delta"]["stop_reason"]
    assert final.usage.output_tokens == message.usage.output_tokens


def test_a_reply_ending_on_its_last_allowed_token_is_end_turn_below_the_cap(
    real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    """`output_tokens` counts the reply, not the end-of-generation token llama.cpp counts in
    `completion_tokens`: with exactly the reply's length as `max_tokens` the cap is hit (`max_tokens`),
    with one more the model ends on its own (`end_turn`), and `output_tokens` is the same both times."""
    # A short greeting ends by itself well under the cap (28 tokens when measured; a yes/no question's answer
    # ran to 47, and under another slot layout past 64).
    messages = [{"role": "user", "content": "Say hi."}]
    roomy = 128

    def ask(max_tokens: int) -> dict:
        settle()
        response = real_http.post(
            "/v1/messages", json={"model": MODEL, "max_tokens": max_tokens, "messages": messages, **GREEDY}
        )
        assert response.status_code == 200, response.text
        return response.json()

    ask(roomy)  # warm the prompt cache, so every run below starts from the same state
    # The slot a greedy run lands in can tip a near-tie (see `settle`), so the reply to count against is the
    # first of a few that ends by itself.
    naturals = [ask(roomy) for _ in range(3)]
    ended = [reply for reply in naturals if reply["stop_reason"] == "end_turn"]
    assert ended, naturals
    natural = ended[0]
    length = natural["usage"]["output_tokens"]
    assert 1 <= length < roomy, natural
    for cap, reason in ((length + 1, "end_turn"), (length, "max_tokens")):
        # Greedy decoding still varies a little with the slot and batch it lands in: compare the run that
        # generated the same reply (a few tries), so the check is about counting, not about sampling.
        tries = [ask(cap) for _ in range(3)]
        same = [reply for reply in tries if reply["content"] == natural["content"]] or tries
        reply = same[0]
        assert (reply["stop_reason"], reply["usage"]["output_tokens"]) == (reason, length), (cap, reply)
        assert block_text(reply["content"]) == block_text(natural["content"])


def test_temperature_zero_is_greedy(real_http: httpx.Client, settle: Callable[[], None]) -> None:
    settle()
    real_http.post("/v1/messages", json={**body(QUESTION[0]["content"], 16), **GREEDY})  # warm the prompt cache
    settle()
    greedy = real_http.post("/v1/messages", json={**body(QUESTION[0]["content"], 16), **GREEDY}).json()
    settle()
    zero = real_http.post("/v1/messages", json={**body(QUESTION[0]["content"], 16), "temperature": 0}).json()
    assert block_text(zero["content"]) == block_text(greedy["content"])


# --- 4. count_tokens ---------------------------------------------------------------------------


def test_sdk_count_tokens_grows_with_a_system_prompt(real_client: anthropic.Anthropic) -> None:
    # SmolLM2's template puts a default system prompt (about 15 tokens) in when none is sent, and a client
    # system prompt replaces it: so compare against a system prompt clearly longer than that default.
    system = "You are a careful astronomer. " * 8 + "Answer in one sentence."
    bare = real_client.messages.count_tokens(model=MODEL, messages=QUESTION).input_tokens
    with_system = real_client.messages.count_tokens(model=MODEL, messages=QUESTION, system=system).input_tokens
    longer = real_client.messages.count_tokens(model=MODEL, messages=QUESTION, system=system + " Be kind.").input_tokens
    assert bare > 0
    assert with_system > bare
    assert longer > with_system


def test_count_tokens_raw_shape(real_http: httpx.Client) -> None:
    for path in ("/v1/messages/count_tokens", "/anthropic/v1/messages/count_tokens?beta=true"):
        response = real_http.post(path, json={"model": MODEL, "messages": QUESTION, "max_tokens": 5, "stream": True})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        payload = response.json()
        assert set(payload) == {"input_tokens", "base_resp"}
        assert payload["base_resp"] == SUCCESS
        assert isinstance(payload["input_tokens"], int) and payload["input_tokens"] > 0


def test_count_tokens_grows_with_the_conversation(real_http: httpx.Client) -> None:
    one = count_tokens(real_http, {"model": MODEL, "messages": QUESTION})
    longer = count_tokens(
        real_http,
        {
            "model": MODEL,
            "messages": [
                *QUESTION,
                {"role": "assistant", "content": "It has no air."},
                {"role": "user", "content": "Another one?"},
            ],
        },
    )
    assert longer > one


def test_usage_matches_count_tokens_and_the_prompt_cache_is_reported(
    real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    payload = {
        "model": MODEL,
        "max_tokens": 4,
        "system": "Answer like a pirate.",
        "messages": [{"role": "user", "content": "What is the capital of Portugal? (parity check)"}],
    }
    expected = count_tokens(real_http, payload)
    first = real_http.post("/v1/messages", json=payload).json()
    settle()
    second = real_http.post("/v1/messages", json=payload).json()
    for message in (first, second):
        assert prompt_total(message["usage"]) == expected
        assert message["usage"]["cache_creation_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] > 0
    assert second["usage"]["input_tokens"] < expected
    _, events = post_stream(real_http, payload)
    assert prompt_total(events[0]["message"]["usage"]) == expected
    assert prompt_total(final_delta(events)["usage"]) == expected


def test_a_follow_up_turn_reports_its_cached_prefix_from_message_start_on(
    real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    """llama.cpp tells the cached part with its first chunk: message_start carries it, and a stream cut at a
    stop sequence (before the engine's own usage) still reports it."""
    system = "You are a patient geography tutor. Answer in full sentences."
    opening = [{"role": "user", "content": "Which river flows through Cairo?"}]
    first = real_http.post(
        "/v1/messages", json={"model": MODEL, "max_tokens": 12, "system": system, "messages": opening, **GREEDY}
    ).json()
    follow_up = {
        "model": MODEL,
        "max_tokens": 16,
        "system": system,
        "messages": [
            *opening,
            {"role": "assistant", "content": block_text(first["content"]) or "The Nile."},
            {"role": "user", "content": "And which sea does it flow into?"},
        ],
        **GREEDY,
    }
    expected = count_tokens(real_http, follow_up)
    for stops in ([], [" "]):  # a space ends the answer at its first word: the stream is cut by rolecall
        settle()
        _, events = post_stream(real_http, {**follow_up, "stop_sequences": stops} if stops else follow_up)
        start, end = events[0]["message"]["usage"], final_delta(events)
        assert start["cache_read_input_tokens"] > 0, (stops, start)
        assert end["usage"]["cache_read_input_tokens"] > 0, (stops, end)
        assert prompt_total(start) == prompt_total(end["usage"]) == expected
        if stops:
            assert end["delta"]["stop_reason"] == "stop_sequence"
        settle()
        message = real_http.post("/v1/messages", json={**follow_up, "stop_sequences": stops}).json()
        assert message["usage"]["cache_read_input_tokens"] > 0, (stops, message["usage"])
        assert prompt_total(message["usage"]) == expected


# --- 9. stop sequences and prefill -------------------------------------------------------------


def _middle_word(text: str) -> str:
    """A word from the middle of `text` whose first occurrence is not at the very start."""
    words = [w.strip(".,;:!?\"'()") for w in text.split()]
    words = [w for w in words if len(w) >= 3 and w.isalpha()]
    assert len(words) >= 3, f"greedy text too short to pick a stop sequence from: {text!r}"
    middle = len(words) // 2
    for word in sorted(words, key=lambda w: abs(words.index(w) - middle)):
        if text.index(word) > 0:
            return word
    raise AssertionError(f"no usable stop word in {text!r}")


def test_stop_sequence_cuts_the_greedy_text(
    real_client: anthropic.Anthropic, real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    messages = [{"role": "user", "content": "Describe a sunny day at the beach in two sentences."}]
    request = dict(model=MODEL, max_tokens=32, messages=messages, extra_body=GREEDY)
    settle()
    real_client.messages.create(**request)  # warm the prompt cache
    settle()
    greedy = sdk_text(real_client.messages.create(**request))
    stop = _middle_word(greedy)
    cut = greedy[: greedy.index(stop)]

    settle()
    message = real_client.messages.create(**request, stop_sequences=[stop, "never-appears-zzz"])
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop
    assert sdk_text(message) == cut

    settle()
    raw = real_http.post(
        "/v1/messages",
        json={"model": MODEL, "max_tokens": 32, "messages": messages, "stop_sequences": [stop], **GREEDY},
    ).json()
    assert raw["stop_reason"] == "stop_sequence" and raw["stop_sequence"] == stop
    assert block_text(raw["content"]) == cut
    assert prompt_total(raw["usage"]) == count_tokens(real_http, {"model": MODEL, "messages": messages})
    assert raw["usage"]["output_tokens"] >= 1

    settle()
    _, events = post_stream(
        real_http, {"model": MODEL, "max_tokens": 32, "messages": messages, "stop_sequences": [stop], **GREEDY}
    )
    delta = final_delta(events)["delta"]
    assert delta == {"stop_reason": "stop_sequence", "stop_sequence": stop}
    assert stream_text(events) == cut
    assert stop not in stream_text(events)

    settle()
    with real_client.messages.stream(**request, stop_sequences=[stop]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == stop
    assert sdk_text(final) == cut


def test_prefill_returns_only_the_continuation(
    real_client: anthropic.Anthropic, real_http: httpx.Client, settle: Callable[[], None]
) -> None:
    prefill = "The answer is"
    messages = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": prefill}]
    without = count_tokens(real_http, {"model": MODEL, "messages": messages[:1]})
    with_prefill = count_tokens(real_http, {"model": MODEL, "messages": messages})
    assert with_prefill > without, "the prefill is part of the prompt"

    settle()
    real_client.messages.create(model=MODEL, max_tokens=8, messages=messages, extra_body=GREEDY)  # warm the cache
    settle()
    message = real_client.messages.create(model=MODEL, max_tokens=8, messages=messages, extra_body=GREEDY)
    text = sdk_text(message)
    assert message.usage.output_tokens >= 1
    assert not text.startswith(prefill)
    assert prompt_total(message.usage.model_dump()) == with_prefill

    settle()
    _, events = post_stream(real_http, {"model": MODEL, "max_tokens": 8, "messages": messages, **GREEDY})
    assert stream_text(events) == text
    assert not stream_text(events).startswith(prefill)
