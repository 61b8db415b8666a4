"""Keys and usage as the operator manages them: one set of operations behind `rolecall keys` / `rolecall
usage` (straight on the database, no server needed) and `/admin` (on a running server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rolecall.core.caller import KeyLimits
from rolecall.core.errors import InvalidRequest, NotFound, RolecallError
from rolecall.service.key_options import check_name, key_view
from rolecall.store.database import Database
from rolecall.store.keys import KeyNameTaken, KeyStore
from rolecall.store.ledger import Grouping, usage

GROUPINGS: tuple[Grouping, ...] = ("key", "model", "day")

# What these operations raise for a request they refuse; its `message` says what to do.
RefusedError = RolecallError


class KeyExists(InvalidRequest):
    status = 409


def parse_since(text: str, now: datetime | None = None) -> float:
    """`2026-11-01`, an ISO time, or a span back from now (`24h`, `7d`, `30m`) -> epoch seconds."""
    now = now or datetime.now(UTC)
    span = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if span:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[span[2]]
        return (now - timedelta(**{unit: int(span[1])})).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"since {text!r}: write a date (2026-11-01), an ISO time, or a span such as 24h or 7d"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Tenants:
    """The operator's operations on the store."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.keys = KeyStore(database)

    async def create(self, name: str, limits: KeyLimits) -> tuple[dict[str, Any], str]:
        """A new key: its view and its secret (shown once)."""
        try:
            stored, secret = await self.keys.create(check_name(name), limits)
        except KeyNameTaken as exc:
            raise KeyExists(f"{exc}; choose another name") from None
        return key_view(stored), secret

    async def all(self) -> list[dict[str, Any]]:
        return [key_view(key) for key in await self.keys.all()]

    async def show(self, name: str) -> dict[str, Any]:
        stored = await self.keys.get(name)
        if stored is None:
            raise NotFound(f"no key named {name!r}: `rolecall keys list` shows the keys there are")
        return key_view(stored)

    async def revoke(self, name: str) -> dict[str, Any]:
        stored = await self.keys.revoke(name)
        if stored is None:
            raise NotFound(f"no key named {name!r}: `rolecall keys list` shows the keys there are")
        return key_view(stored)

    async def usage(self, by: str = "key", key: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """The ledger summed per key, model or UTC day: a list of groups with `requests`, `input_tokens`,
        `cached_tokens`, `output_tokens`."""
        grouping = next((g for g in GROUPINGS if g == by), None)
        if grouping is None:
            raise InvalidRequest(f"by {by!r}: group by one of {', '.join(GROUPINGS)}")
        start = parse_since(since) if since else None
        groups = await usage(self.database, by=grouping, key=key, since=start)
        return [group.as_json(grouping) for group in groups]
