"""app/errors.DoorErrors: an error is rendered in the envelope of the door its path belongs to."""

from __future__ import annotations

import pytest
from starlette.responses import PlainTextResponse, Response

from rolecall.app.errors import DoorErrors
from rolecall.core.errors import NotFound, RolecallError


def renderer(name: str):
    def render(error: RolecallError, request_id: str | None) -> Response:
        return PlainTextResponse(f"{name}:{error.message}:{request_id}", status_code=error.status)

    return render


@pytest.mark.parametrize(
    ("path", "door"),
    [
        ("/v1/messages", "anthropic"),
        ("/anthropic/v1/messages/count_tokens", "anthropic"),
        ("/v1/chat/completions", "openai"),
        ("/v1/chat/completions/extra", "openai"),
        ("/v1/chat/completionsx", "default"),  # a prefix is a whole path segment
        ("/v1/nothing", "default"),
        ("/health", "default"),
    ],
)
def test_the_longest_prefix_picks_the_door(path: str, door: str) -> None:
    doors = DoorErrors(default=renderer("default"))
    doors.register("/v1/messages", renderer("anthropic"))
    doors.register("/anthropic/v1/messages", renderer("anthropic"))
    doors.register("/v1/chat/completions", renderer("openai"))
    response = doors.render(path, NotFound("model: x"), "req_1")
    assert (response.body, response.status_code) == (f"{door}:model: x:req_1".encode(), 404)
