"""API keys: `x-api-key` or `Authorization: Bearer`. Any presented credential that is valid wins.

Keys come from the config file (no limits; compared in constant time) and from the store (`rolecall keys
create`; looked up by their sha256 in the keys the service holds in memory, so no request waits on the
database). Auth is on as soon as any key exists in either; a server with none at all is open (loopback only).

`authenticated` is the FastAPI dependency every API route declares: it yields the `Caller` that the
service carries with the request (and names it in the request's ledger record)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import Scope

from rolecall.core.caller import ANONYMOUS, Caller
from rolecall.core.errors import InvalidCredentials, MissingCredentials
from rolecall.service.keyring import KeyDirectory, refusal

_KEY_ID_CHARS = 8  # as many hex digits of the key's sha256 as `rolecall serve` prints at start-up


def key_id(key: str) -> str:
    """A name for a key that does not reveal it: the first hex digits of its sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:_KEY_ID_CHARS]


def presented_credentials(headers: Headers) -> list[str]:
    """The keys a request presents: its `x-api-key`, its bearer token."""
    api_key = headers.get("x-api-key")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    return [c for c in (api_key, bearer) if c]


class Authenticator:
    def __init__(self, keys: list[str], store: KeyDirectory | None = None) -> None:
        self._keys = [(key.encode(), Caller(key_id(key))) for key in keys]
        self.store = store  # set once the store is open (the app's lifespan)

    @property
    def open(self) -> bool:
        """No keys configured nor stored: every request passes (allowed only on loopback)."""
        return not self._keys and not (self.store is not None and self.store.any)

    def check(self, headers: Headers) -> Caller:
        """The caller a request's credentials name, or `MissingCredentials` / `InvalidCredentials`."""
        if self.open:
            return ANONYMOUS
        presented = presented_credentials(headers)
        if not presented:
            raise MissingCredentials("x-api-key header is required")
        refused = None
        for credential in presented:
            caller = self._match(credential)
            if caller is not None:
                return caller
            stored = self.store.lookup(credential) if self.store is not None else None
            if stored is not None:
                refused = refusal(stored, datetime.now(UTC))
                if refused is None:
                    return Caller(stored.key_id, stored.name, stored.limits)
        if refused is not None:
            raise InvalidCredentials(refused)
        raise InvalidCredentials("invalid x-api-key" if headers.get("x-api-key") else "Invalid bearer token")

    def caller_named(self, label: str) -> Caller:
        """The caller a `Caller.label` names now, with its limits as they are now: a batch's owner, whose
        requests run long after its create call. `InvalidCredentials` (saying why) when that key is gone,
        revoked or expired, or when a batch made without a key meets a server that now requires one."""
        if label == ANONYMOUS.label:
            if self.open:
                return ANONYMOUS
            raise InvalidCredentials("this batch was created without an API key and the server now requires one")
        for _, caller in self._keys:
            if caller.label == label:
                return caller
        stored = self.store.named(label) if self.store is not None else None
        if stored is None:
            raise InvalidCredentials(
                f"the API key that created this batch ({label}) is no longer configured; create the batch again"
            )
        refused = refusal(stored, datetime.now(UTC))
        if refused is not None:
            raise InvalidCredentials(refused)
        return Caller(stored.key_id, stored.name, stored.limits)

    def check_scope(self, scope: Scope) -> None:
        """`check` for an ASGI layer, before any Request exists."""
        if not self.open:
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
    caller = authenticator.check(request.headers)
    record = getattr(request.state, "ledger", None)
    if record is not None:
        record.key = caller.label
    return caller
