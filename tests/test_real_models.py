"""GET /v1/models and /v1/models/{id} on the real server: the Anthropic list shape, paging and 404s."""

from __future__ import annotations

import re
from datetime import datetime

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY
from tests.real_checks import ALIASES, SERVED_ID, assert_error

ALL = [SERVED_ID, *ALIASES]
RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"


def assert_model_item(item: dict) -> None:
    assert item["type"] == "model"
    assert isinstance(item["id"], str) and item["id"]
    assert isinstance(item["display_name"], str) and item["display_name"]
    assert re.fullmatch(RFC3339, item["created_at"]), item["created_at"]
    assert datetime.fromisoformat(item["created_at"]).tzinfo is not None


def test_sdk_lists_the_served_model_and_its_aliases(real_client: anthropic.Anthropic) -> None:
    ids = [model.id for model in real_client.models.list()]
    assert sorted(ids) == sorted(ALL)
    assert len(ids) == len(set(ids))
    for model in real_client.models.list():
        assert model.type == "model" and model.display_name and model.created_at.tzinfo is not None


def test_sdk_under_the_anthropic_prefix(real_url: str) -> None:
    client = anthropic.Anthropic(base_url=real_url + "/anthropic", api_key=API_KEY, max_retries=0)
    assert sorted(model.id for model in client.models.list()) == sorted(ALL)
    assert client.models.retrieve("MiniMax-M2.5").id == "MiniMax-M2.5"


def test_raw_list_shape(real_http: httpx.Client) -> None:
    response = real_http.get("/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert set(page) >= {"data", "has_more", "first_id", "last_id"}
    assert page["object"] == "list", "OpenAI's list fields beside Anthropic's (front-doors.md §1)"
    assert page["has_more"] is False
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    assert sorted(item["id"] for item in page["data"]) == sorted(ALL)
    for item in page["data"]:
        assert_model_item(item)
        assert item["max_input_tokens"] == 8192


@pytest.mark.parametrize("model_id", ALL)
def test_sdk_retrieve(real_client: anthropic.Anthropic, real_http: httpx.Client, model_id: str) -> None:
    model = real_client.models.retrieve(model_id)
    assert model.id == model_id
    assert model.type == "model"
    raw = real_http.get(f"/v1/models/{model_id}").json()
    assert_model_item(raw)
    assert raw["id"] == model_id
    assert raw in real_http.get("/v1/models").json()["data"]


def test_unknown_model_is_404(real_client: anthropic.Anthropic, real_http: httpx.Client) -> None:
    assert_error(
        real_http.get("/v1/models/no-such-model"), 404, "not_found_error", 2013, contains="model: no-such-model"
    )
    assert_error(
        real_http.get("/anthropic/v1/models/claude-9"), 404, "not_found_error", 2013, contains="model: claude-9"
    )
    with pytest.raises(anthropic.NotFoundError):
        real_client.models.retrieve("no-such-model")


def test_paging_with_limit_and_after_id(real_client: anthropic.Anthropic, real_http: httpx.Client) -> None:
    everything = [item["id"] for item in real_http.get("/v1/models").json()["data"]]
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": 2, **({"after_id": after} if after else {})}
        page = real_http.get("/v1/models", params=params).json()
        assert 1 <= len(page["data"]) <= 2
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        assert len(page["data"]) == 2
        after = page["last_id"]
    assert seen == everything

    sdk_page = real_client.models.list(limit=2)
    assert [m.id for m in sdk_page.data] == everything[:2]
    assert sdk_page.has_more is True
    assert [m.id for m in sdk_page.get_next_page().data] == everything[2:4]
    assert [m.id for m in real_client.models.list(limit=2)] == everything  # auto-paging follows after_id


def test_paging_with_before_id(real_http: httpx.Client) -> None:
    everything = [item["id"] for item in real_http.get("/v1/models").json()["data"]]
    page = real_http.get("/v1/models", params={"limit": 2, "before_id": everything[-1]}).json()
    assert [item["id"] for item in page["data"]] == everything[-3:-1]
    assert page["has_more"] is True


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "2.5"])
def test_invalid_limit_is_400(real_http: httpx.Client, limit: str) -> None:
    assert_error(
        real_http.get("/v1/models", params={"limit": limit}), 400, "invalid_request_error", 2013, contains="limit: "
    )


def test_limit_bounds_accepted(real_http: httpx.Client) -> None:
    assert len(real_http.get("/v1/models", params={"limit": 1}).json()["data"]) == 1
    assert len(real_http.get("/v1/models", params={"limit": 1000}).json()["data"]) == len(ALL)
