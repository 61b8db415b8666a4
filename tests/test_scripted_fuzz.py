"""Hostile input, property-based: whatever the body, the answer is a 2xx or a 4xx in the Anthropic
envelope, never a 5xx and never a hang. Runs against the real app (uvicorn) on the scripted engine, so
every example is cheap; example counts are bounded and derandomized to keep the suite fast and stable."""

from __future__ import annotations

import contextlib
import json
import math
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from tests.support.server import running_server
from tests.support.sse import check_stream

ERROR_TYPES = {"invalid_request_error", "not_found_error", "request_too_large", "overloaded_error"}
PATHS = ["/v1/messages", "/anthropic/v1/messages", "/v1/messages/count_tokens", "/v1/render", "/v1/characters/import"]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CAPS = {"max_messages": 40, "max_tools": 8, "max_block_chars": 20_000}


@pytest.fixture(scope="module")
def fuzz_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    engine = ScriptedEngine(context_window=1 << 20)
    registry = ModelRegistry(
        [ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z", aliases=["MiniMax-M2.7"])]
    )
    config = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), queue_length=256, **CAPS)
    with running_server(config, registry=registry) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def assert_well_answered(response: httpx.Response) -> None:
    """A 2xx with a well-formed body, or a 4xx in the Anthropic envelope with MiniMax's base_resp."""
    assert response.status_code < 500, response.text[:500]
    assert response.headers.get("request-id", "").startswith("req_")
    if response.status_code < 300:
        if response.headers["content-type"].startswith("text/event-stream"):
            check_stream(response.content)
        else:
            answer = response.json()
            assert "base_resp" not in answer or answer["base_resp"]["status_code"] == 0
        return
    envelope = response.json()
    assert envelope["type"] == "error" and envelope["error"]["type"] in ERROR_TYPES, envelope
    assert envelope["error"]["message"] and envelope["request_id"] == response.headers["request-id"]
    assert envelope["base_resp"]["status_code"] in (2013, 1039, 1002)
    assert response.headers["x-should-retry"] == ("true" if response.status_code == 529 else "false")


# JSON of every shape: scalars (NaN and infinities included, written as Python's json writes them), nested.
scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63) | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
ROLES = ["user", "assistant", "user_system", "group", "sample_message_user", "system", "bogus"]
WELL_FORMED = {
    "text": st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=60)}),
    "image": st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": st.fixed_dictionaries(
                {"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.text(max_size=8)}
            ),
        }
    ),
    "tool_use": st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": st.sampled_from(["t1", "t2"]),
            "name": st.text(min_size=1, max_size=8),
            "input": st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        }
    ),
    "tool_result": st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": st.sampled_from(["t1", "t2"]), "content": st.text(max_size=20)}
    ),
    "thinking": st.fixed_dictionaries(
        {"type": st.just("thinking"), "thinking": st.text(max_size=30)}, optional={"signature": st.text(max_size=70)}
    ),
    "redacted_thinking": st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": st.text(max_size=10)}),
    "server_tool_use": st.fixed_dictionaries({"type": st.just("server_tool_use"), "id": st.text(max_size=5)}),
}
ODD_BLOCKS = st.fixed_dictionaries(
    {"type": st.sampled_from(["document", "search_result", "web_search_tool_result", "mystery_block", ""])},
    optional={"text": st.text(max_size=20), "source": json_values, "content": json_values, "title": json_values},
)
blocks = st.one_of(*WELL_FORMED.values(), ODD_BLOCKS)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Messages bodies that are mostly well formed (so shaping and generation run), with odd parts mixed in."""
    turns = draw(st.integers(1, 5))
    messages = []
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        role = draw(st.sampled_from([role] * 6 + ROLES))
        content = draw(st.text(min_size=1, max_size=80) | st.lists(blocks, min_size=1, max_size=3))
        messages.append({"role": role, "content": content})
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["MiniMax-M2.7"] * 6 + ["scripted", "nope", ""])),
        "max_tokens": draw(st.integers(1, 64) | st.integers(-2, 300_000)),
        "messages": messages,
    }
    optional = {
        "stream": st.booleans(),
        "temperature": st.floats(0, 1) | st.floats(),
        "top_p": st.floats(),
        "top_k": st.integers(-3, 50),
        "system": st.text(max_size=40) | st.lists(WELL_FORMED["text"], max_size=2),
        "stop_sequences": st.lists(st.text(max_size=5), max_size=3),
        "tools": st.lists(
            st.fixed_dictionaries({"name": st.text(min_size=1, max_size=8)}, optional={"input_schema": json_values}),
            max_size=3,
        ),
        "tool_choice": st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])}, optional={"name": st.text(max_size=8)}
        ),
        "thinking": st.fixed_dictionaries(
            {"type": st.sampled_from(["enabled", "disabled", "adaptive", "x"])},
            optional={"budget_tokens": st.integers(1000, 5000)},
        ),
        "metadata": json_values,
        "unknown_field": json_values,
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        body[name] = draw(optional[name])
    return body


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A request with one value, at any depth, replaced by arbitrary JSON (wrong types, nulls, NaN)."""
    body = draw(requests())
    node: Any = body
    parent: Any = None
    key: Any = None
    for _ in range(draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            parent, key = node, draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            parent, key = node, draw(st.integers(0, len(node) - 1))
        else:
            break
        node = parent[key]
    replacement = draw(json_values)
    if parent is None:
        return replacement
    parent[key] = replacement
    return body


def _post(client: httpx.Client, path: str, content: bytes) -> httpx.Response:
    return client.post(path, content=content, headers={"content-type": "application/json"})


@FUZZ
@given(raw=st.binary(max_size=600), path=st.sampled_from(PATHS))
def test_raw_bytes(fuzz_http: httpx.Client, raw: bytes, path: str) -> None:
    assert_well_answered(_post(fuzz_http, path, raw))


@FUZZ
@given(body=requests(), path=st.sampled_from(PATHS))
def test_generated_requests(fuzz_http: httpx.Client, body: dict, path: str) -> None:
    assert_well_answered(_post(fuzz_http, path, json.dumps(body).encode()))


@FUZZ
@given(body=mutated(), path=st.sampled_from(PATHS))
def test_mutated_requests(fuzz_http: httpx.Client, body: Any, path: str) -> None:
    assert_well_answered(_post(fuzz_http, path, json.dumps(body).encode()))


@FUZZ
@given(body=requests(), cut=st.integers(0, 400), noise=st.binary(min_size=1, max_size=8))
def test_corrupted_bytes(fuzz_http: httpx.Client, body: dict, cut: int, noise: bytes) -> None:
    """Valid JSON with bytes spliced in: truncation, invalid UTF-8, stray control bytes."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    cut = min(cut, len(raw))
    assert_well_answered(_post(fuzz_http, "/v1/messages", raw[:cut] + noise + raw[cut:]))


def _valid(**extra: Any) -> dict[str, Any]:
    return {"model": "MiniMax-M2.7", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **extra}


def _deep(body: dict[str, Any], depth: int) -> bytes:
    """`body` with its "DEEP" string replaced by arrays nested `depth` deep (too deep for json.dumps)."""
    return json.dumps(body).replace('"DEEP"', "[" * depth + "1" + "]" * depth).encode()


HOSTILE: dict[str, bytes] = {
    "deep arrays": _deep(_valid(metadata="DEEP"), 5000),
    "deep tool input": _deep(
        _valid(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": "DEEP"}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
            ]
        ),
        3000,
    ),
    "deep but parseable tool input": _deep(
        _valid(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": "DEEP"}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
            ]
        ),
        150,
    ),
    "nested deeper than the parser's limit": b"[" * 100_000 + b"]" * 100_000,
    "nan temperature": json.dumps(_valid(temperature=math.nan)).encode(),
    "infinite top_p": json.dumps(_valid(top_p=math.inf)).encode(),
    "huge max_tokens": json.dumps(_valid(max_tokens=10**40)).encode(),
    "float max_tokens": json.dumps(_valid(max_tokens=8.0)).encode(),
    "null messages": json.dumps(_valid(messages=None)).encode(),
    "null content": json.dumps(_valid(messages=[{"role": "user", "content": None}])).encode(),
    "null block": json.dumps(_valid(messages=[{"role": "user", "content": [None]}])).encode(),
    "unknown block": json.dumps(_valid(messages=[{"role": "user", "content": [{"type": "hologram"}]}])).encode(),
    "huge int in tool input": json.dumps(
        _valid(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"n": 10**30}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
            ]
        )
    ).encode(),
    "huge int in a tool schema": json.dumps(
        _valid(tools=[{"name": "f", "input_schema": {"default": 10**30}}])
    ).encode(),
    "invalid utf-8 in a string": b'{"model":"MiniMax-M2.7","max_tokens":8,"messages":[{"role":"user","content":"\xff\xfe"}]}',
    "lone surrogate escape": b'{"model":"MiniMax-M2.7","max_tokens":8,"messages":[{"role":"user","content":"\\ud800"}]}',
    "nul bytes": b'{"model":"MiniMax-M2.7\x00","max_tokens":8}',
    "not an object": b"[1, 2, 3]",
    "empty": b"",
    "utf-16": json.dumps(_valid()).encode("utf-16"),
    "block over the cap": json.dumps(_valid(messages=[{"role": "user", "content": "x" * 20_001}])).encode(),
    "too many messages": json.dumps(_valid(messages=[{"role": "user", "content": "hi"}] * 41)).encode(),
    "too many tools": json.dumps(_valid(tools=[{"name": f"t{i}"} for i in range(9)])).encode(),
    "huge key count": json.dumps(_valid(metadata={str(i): i for i in range(200_000)})).encode(),
}
EXPECTED_STATUS = {"block over the cap": 413, "too many messages": 400, "too many tools": 400}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies(fuzz_http: httpx.Client, name: str) -> None:
    response = _post(fuzz_http, "/v1/messages", HOSTILE[name])
    assert_well_answered(response)
    if name in EXPECTED_STATUS:
        assert response.status_code == EXPECTED_STATUS[name], response.text
    elif name not in ("huge int in tool input", "huge key count", "deep but parseable tool input"):
        assert response.status_code == 400, response.text


def test_caps_name_the_offender(fuzz_http: httpx.Client) -> None:
    body = _valid(
        messages=[{"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "y" * 20_001}]}]
    )
    error = _post(fuzz_http, "/v1/messages/count_tokens", json.dumps(body).encode()).json()["error"]
    assert error["type"] == "request_too_large"
    assert error["message"].startswith("messages.0.content.1: block of 20001 characters exceeds the maximum of 20000")
    error = _post(fuzz_http, "/v1/messages", HOSTILE["too many messages"]).json()["error"]
    assert error["message"] == "messages: at most 40 messages are accepted, got 41 (2013)"


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
OPERATIONS = [  # negative cases only where there is a body or parameter to break
    ("/v1/messages", "POST", POSITIVE),
    ("/v1/messages", "POST", NEGATIVE),
    ("/v1/messages/count_tokens", "POST", POSITIVE),
    ("/v1/messages/count_tokens", "POST", NEGATIVE),
    ("/v1/render", "POST", POSITIVE),
    ("/v1/render", "POST", NEGATIVE),
    ("/v1/models", "GET", POSITIVE),
    ("/v1/models/{model_id}", "GET", POSITIVE),
    ("/health", "GET", POSITIVE),
]


@pytest.fixture(scope="module")
def api_schema(fuzz_http: httpx.Client) -> Any:
    return schemathesis.openapi.from_url(str(fuzz_http.base_url.join("/openapi.json")))


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
@settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_schemathesis_against_openapi(
    fuzz_http: httpx.Client, api_schema: Any, path: str, method: str, mode: GenerationMode, data: st.DataObject
) -> None:
    """Cases generated from /openapi.json, conforming (positive) and not (negative): never a 5xx."""
    case = data.draw(api_schema[path][method].as_strategy(generation_mode=mode))
    if isinstance(case.body, NotSet):
        content = None
    elif isinstance(case.body, bytes):
        content = case.body
    else:
        content = json.dumps(case.body).encode()
    headers = {key: str(value) for key, value in (case.headers or {}).items()}
    headers.setdefault("content-type", case.media_type or "application/json")
    response = fuzz_http.request(
        case.method, case.formatted_path, params=case.query or None, content=content, headers=headers
    )
    assert_well_answered(response)


def _raw_exchange(base_url: httpx.URL, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send a request head and body chunks on a raw socket; return what the server answered, which
    may come before the body is complete (the server refuses while reading)."""
    with socket.create_connection((base_url.host, base_url.port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body was complete
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server stopped reading and closed
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
                answer += data
        return answer


def test_declared_oversized_body_is_refused_before_it_is_sent(fuzz_http: httpx.Client) -> None:
    head = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        40 * 2**20
    )
    answer = _raw_exchange(fuzz_http.base_url, head, iter([b"{" + b" " * 1023]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"request_too_large"' in answer or b"Transfer-Encoding: chunked" in answer


def test_chunked_oversized_body_is_refused_while_reading(fuzz_http: httpx.Client) -> None:
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    mib = b" " * 2**20
    chunks = (b"%x\r\n%s\r\n" % (len(mib), mib) for _ in range(48))  # never terminated: 48 MiB and counting
    answer = _raw_exchange(fuzz_http.base_url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
