"""API keys: `x-api-key` or `Authorization: Bearer`. Any presented credential that is valid wins.

`authenticated` is the FastAPI dependency every API route declares: it yields the `Caller` that the
service carries with the request."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import Scope

from rolecall.core.caller import ANONYMOUS, Caller
from rolecall.core.errors import InvalidCredentials, MissingCredentials

_KEY_ID_CHARS = 8  # as many hex digits of the key's sha256 as `rolecall serve` prints at start-up


def key_id(key: str) -> str:
    """A name for a key that does not reveal it: the first hex digits of its sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:_KEY_ID_CHARS]


class Authenticator:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [(key.encode(), Caller(key_id(key))) for key in keys]

    @property
    def open(self) -> bool:
        """No keys configured: every request passes (allowed only on loopback)."""
        return not self._keys

    def check(self, headers: Headers) -> Caller:
        """The caller a request's credentials name, or `MissingCredentials` / `InvalidCredentials`."""
        if not self._keys:
            return ANONYMOUS
        api_key = headers.get("x-api-key")
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        presented = [c for c in (api_key, bearer) if c]
        if not presented:
            raise MissingCredentials("x-api-key header is required")
        for credential in presented:
            caller = self._match(credential)
            if caller is not None:
                return caller
        raise InvalidCredentials("invalid x-api-key" if api_key else "Invalid bearer token")

    def check_scope(self, scope: Scope) -> None:
        """`check` for an ASGI layer, before any Request exists."""
        if self._keys:
            self.check(Headers(scope=scope))

    def _match(self, credential: str) -> Caller | None:
        # Compare against every key so the time taken does not reveal which key came close.
        candidate = credential.encode()
        matched = None
        for key, caller in self._keys:
            if hmac.compare_digest(candidate, key):
                matched = caller
        return matched


async def authenticated(request: Request) -> Caller:
    """The FastAPI dependency: who is asking (401 in the door's envelope when the key is missing or wrong)."""
    authenticator: Authenticator = request.app.state.auth
    return authenticator.check(request.headers)
