"""API keys: `x-api-key` or `Authorization: Bearer`. Any presented credential that is valid wins."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import Scope

from rolecall.core.errors import InvalidCredentials, MissingCredentials


class Authenticator:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def open(self) -> bool:
        """No keys configured: every request passes (allowed only on loopback)."""
        return not self._keys

    def check(self, headers: Headers) -> None:
        if not self._keys:
            return
        api_key = headers.get("x-api-key")
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        presented = [c for c in (api_key, bearer) if c]
        if not presented:
            raise MissingCredentials("x-api-key header is required")
        if any(self._valid(c) for c in presented):
            return
        raise InvalidCredentials("invalid x-api-key" if api_key else "Invalid bearer token")

    def check_scope(self, scope: Scope) -> None:
        """`check` for an ASGI layer, before any Request exists."""
        if self._keys:
            self.check(Headers(scope=scope))

    def _valid(self, credential: str) -> bool:
        # Compare against every key so the time taken does not reveal which key came close.
        candidate = credential.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched
