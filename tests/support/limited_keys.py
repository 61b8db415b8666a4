"""Keys with limits for tests that need them before the store hands them out: each key is its own name,
and it authenticates as a caller with the given limits (the store fills the same `Caller` from its rows)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import Scope

from rolecall.core.caller import Caller, KeyLimits
from rolecall.core.errors import InvalidCredentials, MissingCredentials


class LimitedKeys:
    """Stands in for `app.state.auth`: the key is the name, `x-api-key` or `Authorization: Bearer`."""

    open = False

    def __init__(self, keys: dict[str, KeyLimits]) -> None:
        self._callers = {name: Caller(f"id-{name}", name, limits) for name, limits in keys.items()}

    def check(self, headers: Headers) -> Caller:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        presented = headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")
        if not presented:
            raise MissingCredentials("x-api-key header is required")
        caller = self._callers.get(presented)
        if caller is None:
            raise InvalidCredentials("invalid x-api-key")
        return caller

    def check_scope(self, scope: Scope) -> None:
        self.check(Headers(scope=scope))

    def install(self, app: FastAPI) -> None:
        app.state.auth = self
