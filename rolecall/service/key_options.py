"""What `rolecall keys create` and `POST /admin/keys` accept, checked once for both, and how a key is shown."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

from rolecall.core.caller import KeyLimits
from rolecall.core.errors import InvalidRequest
from rolecall.store.keys import StoredKey

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


# Labels the ledger and the metrics already give to callers that are no stored key.
_RESERVED = frozenset({"anonymous", "none", "other"})


def check_name(name: str) -> str:
    """A key's name: it labels the key's ledger rows and metrics, so it must not pass for another caller."""
    if not _NAME.fullmatch(name) or name.startswith("config:") or name.lower() in _RESERVED:
        raise InvalidRequest(
            f"key name {name!r}: use 1-64 letters, digits and . _ : @ - (starting with a letter or digit; "
            "'config:…', 'anonymous', 'none' and 'other' name callers that are no stored key)"
        )
    return name


def parse_window(text: str | int) -> int:
    """`5h`, `90m`, `1d`, `3600` (seconds) -> seconds."""
    if isinstance(text, int):
        seconds = text
    else:
        found = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
        if not found:
            raise InvalidRequest(f"quota window {text!r}: write a duration such as 5h, 90m, 1d or 3600 (seconds)")
        seconds = int(found[1]) * _UNITS[found[2] or "s"]
    if seconds <= 0:
        raise InvalidRequest("quota window: must be longer than 0 seconds")
    return seconds


def parse_expiry(text: str) -> datetime:
    """`2026-12-31` (the end of that day, UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return datetime.combine(date.fromisoformat(text.strip()), time.max, UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"expires {text!r}: write a date (2026-12-31) or an ISO time (2026-12-31T18:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name}: must be a whole number of at least 1")
    return value


def key_limits(
    *,
    rpm: Any = None,
    tpm: Any = None,
    concurrency: Any = None,
    quota_tokens: Any = None,
    quota_window: Any = None,
    models: Any = None,
    expires: Any = None,
) -> KeyLimits:
    """The limits of a new key from its options (as typed on the command line or sent as JSON)."""
    if (quota_tokens is None) != (quota_window is None):
        raise InvalidRequest(
            "quota: give both the tokens and the window (e.g. --quota-tokens 1000000 --quota-window 5h)"
        )
    if isinstance(models, str):
        models = [glob.strip() for glob in models.split(",") if glob.strip()]
    if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)):
        raise InvalidRequest('models: a list of model names or globs, such as ["smollm2-*", "MiniMax-M2.7"]')
    if models and any("," in glob for glob in models):
        raise InvalidRequest("models: a model name or glob cannot contain a comma")
    if expires is not None and not isinstance(expires, str):
        raise InvalidRequest("expires: a date (2026-12-31) or an ISO time")
    if (quota_window is not None and not isinstance(quota_window, (str, int))) or isinstance(quota_window, bool):
        raise InvalidRequest("quota_window: a duration such as 5h, or seconds")
    return KeyLimits(
        requests_per_minute=_positive("rpm", rpm),
        tokens_per_minute=_positive("tpm", tpm),
        concurrency=_positive("concurrency", concurrency),
        quota_tokens=_positive("quota_tokens", quota_tokens),
        quota_window_seconds=None if quota_window is None else parse_window(quota_window),
        models=tuple(models or ()),
        expires_at=None if expires is None else parse_expiry(expires),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def key_view(key: StoredKey, now: datetime | None = None) -> dict[str, Any]:
    """A key as `keys show --json` and `/admin/keys` present it (never its secret)."""
    now = now or datetime.now(UTC)
    limits = key.limits
    if key.revoked_at is not None:
        state = "revoked"
    elif limits.expires_at is not None and now >= limits.expires_at:
        state = "expired"
    else:
        state = "active"
    return {
        "name": key.name,
        "key_id": key.key_id,
        "state": state,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
        "expires_at": _iso(limits.expires_at),
        "rpm": limits.requests_per_minute,
        "tpm": limits.tokens_per_minute,
        "concurrency": limits.concurrency,
        "quota_tokens": limits.quota_tokens,
        "quota_window_seconds": limits.quota_window_seconds,
        "models": list(limits.models),
    }
