"""protocol/models.model_page: Anthropic's id-based paging."""

from __future__ import annotations

import pytest

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.models import model_object, model_page

ITEMS = [{"id": name} for name in "abcde"]


@pytest.mark.parametrize(
    ("kwargs", "ids", "has_more"),
    [
        ({}, "abcde", False),
        ({"limit": 2}, "ab", True),
        ({"limit": 5}, "abcde", False),
        ({"limit": 1000}, "abcde", False),
        ({"limit": 2, "after_id": "b"}, "cd", True),
        ({"limit": 2, "after_id": "c"}, "de", False),
        ({"after_id": "e"}, "", False),
        ({"limit": 2, "before_id": "d"}, "bc", True),
        ({"limit": 2, "before_id": "c"}, "ab", False),
        ({"before_id": "a"}, "", False),
        ({"after_id": "a", "before_id": "e"}, "bcd", False),
        ({"limit": 2, "after_id": "a", "before_id": "e"}, "bc", True),
    ],
)
def test_paging(kwargs: dict, ids: str, has_more: bool) -> None:
    page = model_page(ITEMS, **kwargs)
    assert [item["id"] for item in page["data"]] == list(ids)
    assert page["has_more"] is has_more
    assert page["first_id"] == (ids[0] if ids else None)
    assert page["last_id"] == (ids[-1] if ids else None)


def test_walking_pages_forward_and_back_visits_everything_once() -> None:
    seen, after = [], None
    while True:
        page = model_page(ITEMS, limit=2, after_id=after)
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == list("abcde")
    back, before = [], "e"
    while True:
        page = model_page(ITEMS, limit=2, before_id=before)
        back = [item["id"] for item in page["data"]] + back
        if not page["has_more"]:
            break
        before = page["first_id"]
    assert back == list("abcd")


def test_empty_list() -> None:
    assert model_page([]) == {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0}, {"limit": 1001}, {"limit": -1}, {"after_id": "zz"}, {"before_id": "zz"}]
)
def test_invalid(kwargs: dict) -> None:
    with pytest.raises(InvalidRequest) as caught:
        model_page(ITEMS, **kwargs)
    assert caught.value.status == 400
    field = next(iter(kwargs))
    assert caught.value.message.startswith(f"{field}: ")


def test_model_object_shape() -> None:
    assert model_object("m", "M", "2024-11-01T00:00:00Z", 8192) == {
        "type": "model",
        "id": "m",
        "display_name": "M",
        "created_at": "2024-11-01T00:00:00Z",
        "max_input_tokens": 8192,
        "max_tokens": 8192,
        # OpenAI's fields, in the same object (both SDKs read one body).
        "object": "model",
        "created": 1730419200,
        "owned_by": "rolecall",
    }
