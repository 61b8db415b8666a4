"""protocol/anthropic/batches: a batch is validated whole, each request as `/v1/messages` validates one, and
every refusal names the request (index and custom_id) and the field; the shapes answered; the routes' answer
on a server without a store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import orjson
import pytest

from rolecall.app.batches import _desk
from rolecall.core.batches import BatchCounts, BatchRecord, BatchResult
from rolecall.core.errors import InvalidRequest, NotFound, PermissionDenied, RolecallError
from rolecall.protocol.anthropic.batches import (
    MAX_REQUESTS,
    batch_object,
    batch_page,
    deleted,
    page_limit,
    parse_batch,
    result_line,
    timestamp,
)
from rolecall.protocol.anthropic.limits import RequestCaps
from rolecall.protocol.anthropic.requests import MessagesRequest

CAPS = RequestCaps(max_messages=8, max_tools=2, max_block_chars=100)
PARAMS = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def _accept(body: MessagesRequest) -> None:
    pass


def _batch(*params: dict, ids: list[str] | None = None) -> bytes:
    ids = ids or [f"req-{i}" for i in range(len(params))]
    return json.dumps({"requests": [{"custom_id": c, "params": p} for c, p in zip(ids, params, strict=True)]}).encode()


def _refusal(body: bytes, check=_accept, kind: type[RolecallError] = InvalidRequest) -> str:
    with pytest.raises(RolecallError) as caught:
        parse_batch(body, CAPS, check)
    assert type(caught.value) is kind
    return caught.value.message


def test_a_valid_batch_keeps_each_request_as_sent_in_order() -> None:
    role_play = {
        **PARAMS,
        "messages": [
            {"role": "user_system", "content": "You are Mira.", "name": "Mira"},
            {"role": "sample_message_user", "content": "hello", "name": "Tom"},
            {"role": "sample_message_ai", "content": "hi", "name": "Mira"},
            {"role": "user", "content": "go on"},
        ],
        "unknown_field": [1, 2],  # ignored by /v1/messages, kept as sent
    }
    seen: list[str] = []
    items = parse_batch(_batch(PARAMS, role_play, ids=["a", "b_-9"]), CAPS, lambda body: seen.append(body.model))
    assert [(item.custom_id, item.params) for item in items] == [("a", PARAMS), ("b_-9", role_play)]
    assert seen == ["m", "m"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Request body is not valid JSON"),
        (b'{"requests": [{"custom_id": "a", "params": {"temperature": NaN}}]}', "Request body is not valid JSON"),
        (b"[]", "Request body must be a JSON object"),
        (b"{}", "requests: Field required"),
        (b'{"requests": {}}', "requests: Input should be a valid list"),
        (b'{"requests": []}', "requests: a batch needs at least one request"),
        (b'{"requests": [3]}', "requests.0: Input should be an object"),
        (b'{"requests": [{"params": {}}]}', "requests.0.custom_id: Field required"),
        (b'{"requests": [{"custom_id": 7, "params": {}}]}', "requests.0.custom_id: Input should be a valid string"),
    ],
)
def test_the_batch_shape_is_refused_with_the_path(body: bytes, message: str) -> None:
    assert _refusal(body).startswith(message)


@pytest.mark.parametrize("custom_id", ["", "a" * 65, "has space", "dot.ted", "ü", "a/b"])
def test_a_custom_id_outside_the_pattern_is_refused_by_name(custom_id: str) -> None:
    message = _refusal(_batch(PARAMS, PARAMS, ids=["ok", custom_id]))
    assert message.startswith(
        f"requests.1.custom_id: {json.dumps(custom_id, ensure_ascii=False)} is not a valid custom_id"
    )
    assert "1 to 64 letters, digits, '_' or '-'" in message


def test_the_longest_custom_id_is_accepted() -> None:
    assert parse_batch(_batch(PARAMS, ids=["x" * 64]), CAPS, _accept)[0].custom_id == "x" * 64


def test_a_repeated_custom_id_names_both_requests() -> None:
    message = _refusal(_batch(PARAMS, PARAMS, PARAMS, ids=["a", "b", "a"]))
    assert (
        message
        == 'requests.2.custom_id: "a" is already the custom_id of requests.0; each request in a batch needs its own'
    )


def test_too_many_requests_is_refused_before_any_is_read() -> None:
    body = orjson.dumps({"requests": [0] * (MAX_REQUESTS + 1)})
    assert _refusal(body).startswith(f"requests: at most {MAX_REQUESTS} requests are accepted in one batch")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "params: Field required"),
        ([], "params: Input should be an object"),
        ({**PARAMS, "max_tokens": None}, "params.max_tokens: Input should be a valid integer"),
        ({k: v for k, v in PARAMS.items() if k != "max_tokens"}, "params.max_tokens: Field required"),
        ({**PARAMS, "temperature": 2}, "params.temperature: Input should be less than or equal to 1"),
        ({**PARAMS, "messages": [{"role": "robot", "content": "x"}]}, "params.messages.0.role: Input should be"),
        ({**PARAMS, "stream": True}, "params.stream: batch requests cannot stream"),
        ({**PARAMS, "messages": PARAMS["messages"] * 9}, "params.messages: at most 8 messages are accepted"),
        ({**PARAMS, "system": "x" * 101}, "params.system.0.text: block of 101 characters exceeds the maximum"),
        ({**PARAMS, "tools": [{"name": "t", "input_schema": {"n": 2**64}}]}, "params.tools.0.input_schema: numbers"),
        ({**PARAMS, "ignored": 2**64}, "params: numbers must fit in 64 bits"),
    ],
)
def test_an_invalid_request_is_refused_naming_its_custom_id_and_field(params: dict | None, message: str) -> None:
    request = {"custom_id": "bad-one"} if params is None else {"custom_id": "bad-one", "params": params}
    body = json.dumps({"requests": [{"custom_id": "fine", "params": PARAMS}, request]}).encode()
    refusal = _refusal(body)  # always a 400 for the batch, even where /v1/messages answers 413
    assert refusal.startswith(f'requests.1 (custom_id "bad-one"): {message}'), refusal


def test_stream_false_is_accepted() -> None:
    assert parse_batch(_batch({**PARAMS, "stream": False}), CAPS, _accept)[0].params["stream"] is False


def test_the_doors_check_refuses_an_unknown_model_as_a_400_naming_the_request() -> None:
    def unknown(body: MessagesRequest) -> None:
        raise NotFound(f"model: {body.model} not found; served models: smol")

    message = _refusal(_batch(PARAMS, ids=["q1"]), unknown)
    assert message == 'requests.0 (custom_id "q1"): params.model: m not found; served models: smol'


def test_a_model_the_key_may_not_use_stays_a_403_naming_the_request() -> None:
    def forbidden(body: MessagesRequest) -> None:
        raise PermissionDenied(f"this API key may not use model {body.model}; it may use: other")

    message = _refusal(_batch(PARAMS, ids=["q1"]), forbidden, PermissionDenied)
    assert message == 'requests.0 (custom_id "q1"): this API key may not use model m; it may use: other'


RECORD = BatchRecord(
    id="msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
    owner="k",
    status="in_progress",
    counts=BatchCounts(processing=2),
    created_at=1724179044.100435,
    expires_at=1724179044.100435 + 86400,
    ended_at=None,
    cancel_initiated_at=None,
)


def test_times_are_rfc3339_with_microseconds_and_z() -> None:
    assert timestamp(1724179044.100435) == "2024-08-20T18:37:24.100435Z"
    assert timestamp(0) == "1970-01-01T00:00:00.000000Z"
    assert timestamp(None) is None


def test_the_batch_object_while_in_progress_has_no_results_url() -> None:
    shown = batch_object(RECORD, "http://h/v1/messages/batches/x/results")
    assert orjson.dumps(shown) == (
        b'{"id":"msgbatch_013Zva2CMHLNnXjNJJKqJ2EF","type":"message_batch","processing_status":"in_progress",'
        b'"request_counts":{"processing":2,"succeeded":0,"errored":0,"canceled":0,"expired":0},'
        b'"created_at":"2024-08-20T18:37:24.100435Z","expires_at":"2024-08-21T18:37:24.100435Z",'
        b'"ended_at":null,"cancel_initiated_at":null,"archived_at":null,"results_url":null}'
    )


def test_an_ended_batch_shows_its_results_url_and_times() -> None:
    ended = BatchRecord(
        **{
            **{f: getattr(RECORD, f) for f in RECORD.__slots__},  # type: ignore[attr-defined]
            "status": "ended",
            "counts": BatchCounts(succeeded=1, canceled=1),
            "ended_at": RECORD.created_at + 1.5,
            "cancel_initiated_at": RECORD.created_at + 1,
        }
    )
    shown = batch_object(ended, "http://h/anthropic/v1/messages/batches/x/results")
    assert shown["results_url"] == "http://h/anthropic/v1/messages/batches/x/results"
    assert shown["ended_at"] == "2024-08-20T18:37:25.600435Z"
    assert shown["cancel_initiated_at"] == "2024-08-20T18:37:25.100435Z"
    assert shown["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 0, "canceled": 1, "expired": 0}


def test_the_list_page_and_the_delete_answer() -> None:
    assert batch_page([], False) == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    page = batch_page([{"id": "b"}, {"id": "a"}], True)
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("b", "a", True)
    assert deleted("msgbatch_x") == {"id": "msgbatch_x", "type": "message_batch_deleted"}


@pytest.mark.parametrize(("value", "limit"), [(None, 20), ("1", 1), ("1000", 1000)])
def test_the_page_limit(value: str | None, limit: int) -> None:
    assert page_limit(value) == limit


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "between 1 and 1000"), ("1001", "between 1 and 1000"), ("x", "valid integer"), ("-1", "valid integer")],
)
def test_a_page_limit_out_of_range_is_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        page_limit(value)


def test_results_lines_are_compact_json_one_per_line() -> None:
    message = {"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "a\nb"}]}
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "too long"}, "request_id": None}
    lines = [
        result_line(BatchResult("a", "succeeded", message)),
        result_line(BatchResult("b", "errored", error)),
        result_line(BatchResult("c", "canceled", None)),
        result_line(BatchResult("d", "expired", None)),
    ]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 and b": " not in line for line in lines)
    assert [json.loads(line) for line in lines] == [
        {"custom_id": "a", "result": {"type": "succeeded", "message": message}},
        {"custom_id": "b", "result": {"type": "errored", "error": error}},
        {"custom_id": "c", "result": {"type": "canceled"}},
        {"custom_id": "d", "result": {"type": "expired"}},
    ]


def test_without_a_store_every_batch_route_says_batches_need_one() -> None:
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(batches=None))))
    with pytest.raises(NotFound) as caught:
        _desk(request)  # type: ignore[arg-type]
    assert caught.value.status == 404 and "they need the store" in caught.value.message
