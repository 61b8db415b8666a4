"""`/admin`: keys and usage on a running server, guarded by the admin key (`admin_key` in the settings;
never an ordinary API key). Without one configured, /admin answers 404 saying how to turn it on.

    POST   /admin/keys               {"name": ..., "rpm": ..., "quota_tokens": ..., "quota_window": "5h", ...}
    GET    /admin/keys               every key (never a secret)
    GET    /admin/keys/{name}
    DELETE /admin/keys/{name}        revoke (POST /admin/keys/{name}/revoke does the same)
    GET    /admin/usage?by=key|model|day&key=NAME&since=24h"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rolecall.app.auth import Authenticator, presented_credentials
from rolecall.app.body import read_body
from rolecall.app.responses import JSONResponse
from rolecall.core.errors import InvalidCredentials, InvalidRequest, MissingCredentials, NotFound, PermissionDenied
from rolecall.service.key_options import key_limits
from rolecall.service.runtime import Runtime
from rolecall.service.tenants import Tenants

_ADMIN_BODY_BYTES = 64 * 1024
_OPTIONS = ("rpm", "tpm", "concurrency", "quota_tokens", "quota_window", "models", "expires")


def _tenants(request: Request) -> Tenants:
    runtime: Runtime = request.app.state.runtime
    assert runtime.store is not None
    return Tenants(runtime.store.database)


async def admin_only(request: Request) -> None:
    """The admin key, and nothing else, opens /admin."""
    runtime: Runtime = request.app.state.runtime
    admin_key = runtime.settings.admin_key
    if not admin_key:
        raise NotFound("the admin API is off: set admin_key in the config file (or ROLECALL_ADMIN_KEY) and restart")
    presented = presented_credentials(request.headers)
    if not presented:
        raise MissingCredentials("x-api-key header with the admin key is required for /admin")
    if any(hmac.compare_digest(c.encode(), admin_key.encode()) for c in presented):
        return
    auth: Authenticator = request.app.state.auth
    invalid = InvalidCredentials("invalid admin key: /admin takes the admin_key from the settings")
    if auth.open:  # no API keys at all: whatever was sent is no key
        raise invalid
    try:
        auth.check(request.headers)
    except (MissingCredentials, InvalidCredentials):
        raise invalid from None
    raise PermissionDenied("this API key may not use /admin: send the admin key (admin_key in the settings)")


router = APIRouter(prefix="/admin", dependencies=[Depends(admin_only)], include_in_schema=False)


async def _refresh(request: Request) -> None:
    # This instance sees its own change at once; the others within a second.
    runtime: Runtime = request.app.state.runtime
    assert runtime.store is not None
    await runtime.store.keys.refresh()


@router.post("/keys")
async def create_key(request: Request) -> Response:
    try:
        body: Any = orjson.loads(await read_body(request, _ADMIN_BODY_BYTES))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise InvalidRequest('send a JSON object with the key\'s "name" (and any of ' + ", ".join(_OPTIONS) + ")")
    unknown = sorted(set(body) - {"name", *_OPTIONS})
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(unknown)}: a key takes name, {', '.join(_OPTIONS)}")
    limits = key_limits(**{option: body.get(option) for option in _OPTIONS})
    view, secret = await _tenants(request).create(body["name"], limits)
    await _refresh(request)
    return JSONResponse({**view, "key": secret}, status_code=201)


@router.get("/keys")
async def list_keys(request: Request) -> Response:
    return JSONResponse({"data": await _tenants(request).all()})


@router.get("/keys/{name}")
async def show_key(request: Request, name: str) -> Response:
    return JSONResponse(await _tenants(request).show(name))


@router.delete("/keys/{name}")
@router.post("/keys/{name}/revoke")
async def revoke_key(request: Request, name: str) -> Response:
    view = await _tenants(request).revoke(name)
    await _refresh(request)
    return JSONResponse(view)


@router.get("/usage")
async def usage(request: Request) -> Response:
    query = request.query_params
    groups = await _tenants(request).usage(query.get("by", "key"), query.get("key"), query.get("since"))
    return JSONResponse(groups)
