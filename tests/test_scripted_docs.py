"""`/docs` works offline: Swagger UI's page loads every asset from rolecall itself, never from a CDN."""

from __future__ import annotations

import re

import httpx


def test_docs_page_loads_only_local_assets(scripted_url: str) -> None:
    page = httpx.get(scripted_url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, "the page references its script, stylesheet and icon"
    assert not [url for url in assets if "//" in url], "no asset may come from another host (a CDN)"
    kinds = {}
    for url in assets:
        response = httpx.get(scripted_url + url)
        assert response.status_code == 200, url
        kinds[url.rsplit(".", 1)[-1]] = response
    assert kinds["js"].headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "SwaggerUIBundle" in kinds["js"].text
    assert kinds["css"].headers["content-type"].startswith("text/css")
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    assert httpx.get(scripted_url + "/openapi.json").status_code == 200


def test_redoc_is_not_served(scripted_url: str) -> None:
    """ReDoc needs a CDN as well; rather than a blank page, there is none."""
    assert httpx.get(scripted_url + "/redoc").status_code == 404


def test_oauth2_redirect_page_is_inline(scripted_url: str) -> None:
    page = httpx.get(scripted_url + "/docs/oauth2-redirect")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert not re.findall(r'(?:src|href)="[^"]*//', page.text), "nothing fetched from another host"
