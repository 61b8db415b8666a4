"""app/auth.Authenticator: x-api-key or Bearer; any valid presented credential wins."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from rolecall.app.auth import Authenticator
from rolecall.core.errors import InvalidCredentials, MissingCredentials

KEYS = ["key-one", "key-two"]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "key-one"},
        {"x-api-key": "key-two"},
        {"authorization": "Bearer key-one"},
        {"authorization": "bearer key-two"},
        {"Authorization": "Bearer   key-one  "},
        {"x-api-key": "key-one", "authorization": "Bearer dummy"},
        {"x-api-key": "dummy", "authorization": "Bearer key-two"},
        {"x-api-key": "key-one", "authorization": "Bearer key-two"},
        {"X-Api-Key": "key-two"},
    ],
)
def test_accepted(headers: dict) -> None:
    Authenticator(KEYS).check(Headers(headers))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"authorization": "Bearer "},
        {"authorization": "Basic a2V5LW9uZQ=="},
        {"authorization": "key-one"},
        {"x-api-key": "", "authorization": ""},
    ],
)
def test_missing(headers: dict) -> None:
    with pytest.raises(MissingCredentials) as caught:
        Authenticator(KEYS).check(Headers(headers))
    assert caught.value.status == 401 and caught.value.code == 1004
    assert caught.value.message == "x-api-key header is required"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-api-key": "wrong"}, "invalid x-api-key"),
        ({"x-api-key": "key-one "}, "invalid x-api-key"),
        ({"x-api-key": "KEY-ONE"}, "invalid x-api-key"),
        ({"x-api-key": "key"}, "invalid x-api-key"),
        ({"authorization": "Bearer wrong"}, "Invalid bearer token"),
        ({"x-api-key": "wrong", "authorization": "Bearer also-wrong"}, "invalid x-api-key"),
    ],
)
def test_invalid(headers: dict, message: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        Authenticator(KEYS).check(Headers(headers))
    assert caught.value.status == 401 and caught.value.code == 2049
    assert caught.value.message == message


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "anything"}, {"authorization": "Bearer x"}])
def test_no_keys_is_open(headers: dict) -> None:
    auth = Authenticator([])
    assert auth.open
    auth.check(Headers(headers))


def test_with_keys_is_not_open() -> None:
    assert not Authenticator(KEYS).open
