"""API keys, the headers every response carries, and the operational routes, on the real server
(configured with the single key `test-key`)."""

from __future__ import annotations

import time

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY
from tests.real_checks import MODEL, REQUEST_ID, SERVED_ID, SUCCESS, assert_error, body, metric_sample
from tests.support.waiting import wait_until

TINY = body("Hi", max_tokens=1)


@pytest.fixture
def anonymous(real_url: str):
    with httpx.Client(base_url=real_url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": API_KEY},
        {"authorization": f"Bearer {API_KEY}"},
        {"authorization": f"bearer {API_KEY}"},
        {"X-Api-Key": API_KEY},
        {"x-api-key": API_KEY, "authorization": "Bearer dummy"},
        {"x-api-key": "dummy", "authorization": f"Bearer {API_KEY}"},
    ],
    ids=["x-api-key", "bearer", "bearer-lowercase", "header-case", "valid-key-dummy-bearer", "dummy-key-valid-bearer"],
)
def test_valid_credentials(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    response = anonymous.post("/v1/messages", json=TINY, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["base_resp"] == SUCCESS
    assert REQUEST_ID.fullmatch(response.headers["request-id"])


def test_sdk_auth_token_is_sent_as_bearer(real_url: str) -> None:
    client = anthropic.Anthropic(base_url=real_url, api_key=None, auth_token=API_KEY, max_retries=0)
    message = client.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    assert message.type == "message"


@pytest.mark.parametrize(
    "headers, code, message",
    [
        ({}, 1004, "x-api-key header is required"),
        ({"x-api-key": ""}, 1004, "x-api-key header is required"),
        ({"authorization": "Basic dGVzdC1rZXk="}, 1004, "x-api-key header is required"),
        ({"x-api-key": "wrong"}, 2049, "invalid x-api-key"),
        ({"authorization": "Bearer wrong"}, 2049, "Invalid bearer token"),
        ({"x-api-key": "wrong", "authorization": "Bearer also-wrong"}, 2049, None),
        ({"x-api-key": API_KEY + "x"}, 2049, None),
    ],
    ids=["missing", "empty", "basic-scheme", "wrong-key", "wrong-bearer", "both-wrong", "key-with-suffix"],
)
def test_bad_credentials_are_401(
    anonymous: httpx.Client, headers: dict[str, str], code: int, message: str | None
) -> None:
    for path in ("/v1/messages", "/anthropic/v1/messages/count_tokens", "/v1/models"):
        if path == "/v1/models":
            response = anonymous.get(path, headers=headers)
        else:
            response = anonymous.post(path, json=TINY, headers=headers)
        assert_error(response, 401, "authentication_error", code, contains=message)


def test_authentication_comes_before_validation(anonymous: httpx.Client) -> None:
    response = anonymous.post("/v1/messages", content=b"{broken", headers={"x-api-key": "wrong"})
    assert_error(response, 401, "authentication_error", 2049)


def test_request_id_on_errors(anonymous: httpx.Client, real_http: httpx.Client) -> None:
    responses = {
        401: anonymous.post("/v1/messages", json=TINY),
        404: real_http.get("/v1/no-such-route"),
        405: real_http.delete("/v1/messages"),
    }
    assert_error(responses[404], 404, "not_found_error", 2013)
    assert_error(responses[405], 405, "invalid_request_error", 2013)
    ids = set()
    for status, response in responses.items():
        assert response.status_code == status
        assert REQUEST_ID.fullmatch(response.headers["request-id"])
        assert response.json()["request_id"] == response.headers["request-id"]
        assert response.headers["x-should-retry"] == "false"
        ids.add(response.headers["request-id"])
    assert len(ids) == 3, "request ids are unique"


def test_get_on_the_messages_route_is_405(real_http: httpx.Client) -> None:
    assert_error(real_http.get("/v1/messages"), 405, "invalid_request_error", 2013)
    assert_error(real_http.get("/anthropic/v1/messages/count_tokens"), 405, "invalid_request_error", 2013)


def test_no_redirects(real_http: httpx.Client) -> None:
    for path in ("/v1/messages/", "/v1/models/", "/anthropic/v1/messages?beta=true"):
        method = "GET" if "models" in path else "POST"
        response = real_http.request(method, path, json=TINY if method == "POST" else None)
        assert response.status_code == 200, (path, response.status_code)
        assert not response.is_redirect


# --- operational routes ------------------------------------------------------------------------


def test_health_needs_no_key(anonymous: httpx.Client) -> None:
    response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["models"] == {SERVED_ID: "ok"}
    assert REQUEST_ID.fullmatch(response.headers["request-id"])


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_root_probe_is_fast(anonymous: httpx.Client, method: str) -> None:
    began = time.perf_counter()
    response = anonymous.request(method, "/")
    elapsed = time.perf_counter() - began
    assert response.status_code == 200
    assert elapsed < 2.0
    assert REQUEST_ID.fullmatch(response.headers["request-id"])
    if method == "HEAD":
        assert response.content == b""


def test_claude_code_telemetry_sink(anonymous: httpx.Client) -> None:
    response = anonymous.post("/api/event_logging/batch", json={"events": [{"name": "x"}]})
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect"])
def test_operator_paths_need_a_key(anonymous: httpx.Client, real_http: httpx.Client, path: str) -> None:
    """With keys configured, metrics (they name internal replicas) and the docs need one; /health does not."""
    refused = anonymous.get(path)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert anonymous.get(path, headers={"x-api-key": "wrong"}).status_code == 401
    assert real_http.get(path).status_code == 200
    assert anonymous.get("/health").status_code == 200


def _settled_metrics(client: httpx.Client) -> str:
    """/metrics once no other request is in flight: a response's last byte can reach the client just
    before the server counts the request, and a keep-alive client's next request can overtake that."""
    text = ""

    def settled() -> bool:
        nonlocal text
        text = client.get("/metrics").text
        return metric_sample(text, "rolecall_in_flight_requests") == 1  # this /metrics request alone

    assert wait_until(settled)
    return text


def test_metrics_count_requests_and_tokens(real_http: httpx.Client) -> None:
    assert real_http.post("/v1/messages", json=body("Hi", max_tokens=3)).status_code == 200
    assert real_http.post("/v1/messages", json=body("Hi", max_tokens=3, stream=True)).status_code == 200
    before = _settled_metrics(real_http)
    assert real_http.post("/v1/messages", json=body("Hello", max_tokens=3)).status_code == 200
    response = real_http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = _settled_metrics(real_http)
    for family in (
        "rolecall_requests_total",
        "rolecall_output_tokens_total",
        "rolecall_time_to_first_token_seconds",
        "rolecall_input_tokens_total",
        "rolecall_request_duration_seconds",
        "rolecall_in_flight_requests",
    ):
        assert family in text, family
    route = "/v1/messages"
    assert (
        metric_sample(text, "rolecall_requests_total", route=route, status="200")
        == metric_sample(before, "rolecall_requests_total", route=route, status="200") + 1
    )
    assert metric_sample(text, "rolecall_output_tokens_total", model=SERVED_ID) > metric_sample(
        before, "rolecall_output_tokens_total", model=SERVED_ID
    )
    assert metric_sample(text, "rolecall_time_to_first_token_seconds_count", model=SERVED_ID) >= 2


def test_docs_and_openapi(real_http: httpx.Client) -> None:
    docs = real_http.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec = real_http.get("/openapi.json")
    assert spec.status_code == 200
    schema = spec.json()
    for path in ("/v1/messages", "/anthropic/v1/messages", "/v1/messages/count_tokens"):
        operation = schema["paths"][path]["post"]
        body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        ref = body_schema["$ref"].rsplit("/", 1)[-1]
        properties = schema["components"]["schemas"][ref]["properties"]
        assert {"model", "messages"} <= set(properties)
    messages_ref = schema["paths"]["/v1/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "$ref"
    ]
    assert "max_tokens" in schema["components"]["schemas"][messages_ref.rsplit("/", 1)[-1]]["required"]
    assert "/v1/models" in schema["paths"]
