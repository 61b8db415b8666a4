"""`POST /v1/characters/import`, `POST /v1/render` and `GET /playground` on the real server and bundled model."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.cards import png_card, v2_card, v3_card

MODEL = "MiniMax-M2.7"


def test_import_a_png_card_as_raw_body(real_http: httpx.Client) -> None:
    response = real_http.post(
        "/v1/characters/import?user=Tomas", content=png_card(v3_card(), "ccv3"), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["spec"] == "chara_card_v3" and body["char_name"] == "Old Mira"
    assert body["greetings"][0] == "*Old Mira looks up from the bar.* Boots off the bench, Tomas."


def test_import_json_card_as_multipart_with_user_field(real_http: httpx.Client) -> None:
    files = {"card": ("mira.json", json.dumps(v2_card()).encode(), "application/json")}
    response = real_http.post("/v1/characters/import", files=files, data={"user": "Tomas"})
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0] == {
        "role": "group",
        "content": "A stormy night at the Salt Lantern; Tomas comes in soaked.",
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x89PNG\r\n\x1a\nnot really", "truncated"),
        (b"hello", "not a character card"),
        (b"x" * (20 * 2**20), "larger than 16 MiB"),
    ],
)
def test_malformed_cards_get_a_400_in_the_error_envelope(real_http: httpx.Client, content: bytes, says: str) -> None:
    response = real_http.post("/v1/characters/import", content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_multipart_without_a_card_field_is_a_400(real_http: httpx.Client) -> None:
    response = real_http.post("/v1/characters/import", files={"user": (None, "Tomas")})
    assert response.status_code == 400
    assert "attach the card as `card`" in response.json()["error"]["message"]


def test_import_and_render_need_the_key(real_url: str) -> None:
    for path in ("/v1/characters/import", "/v1/render"):
        assert httpx.post(f"{real_url}{path}", content=b"{}", headers={"x-api-key": "wrong"}).status_code == 401


def test_render_shows_the_shaped_turns_and_the_exact_prompt(real_http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "system": "You are Mira.",
        "messages": [
            {"role": "user_system", "content": "The user is Tomas."},
            {"role": "group", "content": "The Salt Lantern"},
            {"role": "user", "content": "Evening."},
        ],
    }
    response = real_http.post("/v1/render", json=body)
    assert response.status_code == 200, response.text
    rendered = response.json()
    assert rendered["door"] == "anthropic" and rendered["model"] == MODEL
    assert rendered["turns"] == [
        {
            "role": "system",
            "content": "You are Mira.\n\nThe user's character: The user is Tomas.\n\nScene: The Salt Lantern",
        },
        {"role": "user", "content": "Evening."},
    ]
    assert rendered["prompt"] == (
        "<|im_start|>system\nYou are Mira.\n\nThe user's character: The user is Tomas.\n\nScene: The Salt Lantern"
        "<|im_end|>\n<|im_start|>user\nEvening.<|im_end|>\n<|im_start|>assistant\n"
    )
    counted = real_http.post("/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert rendered["input_tokens"] == counted


def test_render_door_by_query_and_path(real_http: httpx.Client) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    assert real_http.post("/anthropic/v1/render", json=body).json()["door"] == "anthropic"
    refused = real_http.post("/v1/render?door=carrier-pigeon", json=body)
    assert refused.status_code == 400 and "carrier-pigeon" in refused.json()["error"]["message"]
    invalid = real_http.post("/v1/render", json={"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]})
    assert invalid.status_code == 400


def test_playground_is_served_with_a_strict_content_security_policy(real_url: str) -> None:
    page = httpx.get(f"{real_url}/playground")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert "<script" in page.text and "<script>" not in page.text  # scripts only from files
    script = httpx.get(f"{real_url}/playground/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for missing in ("/playground/nope.js", "/playground/..%2Fapp%2Ffactory.py", "/playground/__init__.py"):
        assert httpx.get(f"{real_url}{missing}").status_code == 404
