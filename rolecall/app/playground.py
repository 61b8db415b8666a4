"""`GET /playground`: the browser playground, static files shipped inside the package (no CDN, no build).

The page calls rolecall's own API with the key the person types. It is served with a strict
Content-Security-Policy: scripts and styles only from these files, nothing inline, no other origin.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from rolecall.core.errors import NotFound

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

router = APIRouter(include_in_schema=False)


@router.get("/playground")
async def playground_page() -> Response:
    return _asset("index.html")


@router.get("/playground/")
async def playground_slash() -> Response:
    return RedirectResponse("/playground", status_code=308)


@router.get("/playground/{name}")
async def playground_asset(name: str) -> Response:
    return _asset(name)


def _asset(name: str) -> Response:
    """One file of the playground folder (flat: no sub-paths, so nothing outside it can be named)."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    files = resources.files("rolecall.playground")
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _TYPES:
        raise NotFound(f"Not found: /playground/{name}")
    asset = files.joinpath(name)
    if not asset.is_file():
        raise NotFound(f"Not found: /playground/{name}")
    return Response(asset.read_bytes(), media_type=_TYPES[suffix], headers=_HEADERS)
