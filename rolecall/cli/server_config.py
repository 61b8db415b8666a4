"""The uvicorn configuration rolecall runs under: `rolecall serve` and the test server both build it here,
so the tests exercise the connection limits (app/connections.py) and log redaction users get."""

from __future__ import annotations

import logging
import re
import resource
from typing import Any

import uvicorn

from rolecall.app.connections import ConnectionLimits, bounded_protocol
from rolecall.settings import Settings

log = logging.getLogger("rolecall")

# File descriptors kept free of client connections: the listening socket, engine children's pipes,
# upstream connections, log files.
_FD_RESERVE = 128

# Query parameters whose values never reach the access log.
_SECRET_NAMES = r"(?:api[_-]?key|x-api-key|key|token|access[_-]?token|auth|authorization|password|secret|signature|sig)"
_SECRET_PARAM = re.compile(rf"(?i)(^|[?&;]){_SECRET_NAMES}=[^&;#]*")


def server_config(app: Any, settings: Settings, *, log_level: str | None = None, **extra: Any) -> uvicorn.Config:
    """uvicorn's Config for `app`: the bounded connection protocol, and an access log without secrets."""
    limits = ConnectionLimits(
        idle_timeout=settings.idle_timeout,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        min_body_rate=settings.min_body_rate,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_connections=connection_cap(settings.max_connections),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level or settings.log_level,
        http=bounded_protocol(limits),
        **extra,
    )
    _redact_access_log()
    return config


def connection_cap(wanted: int) -> int:
    """`max_connections`, lowered if the process may not open that many files (raising the soft limit
    towards the hard one first), so the cap refuses connections before the process runs out of fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    capped = max(1, soft - _FD_RESERVE)
    log.warning("max_connections lowered from %d to %d: the open-file limit is %d", wanted, capped, soft)
    return capped


def redact_query(path: str) -> str:
    """`path?key=sk-123&x=1` -> `path?key=[redacted]&x=1`."""
    if "?" not in path:
        return path
    base, _, query = path.partition("?")
    return base + "?" + _SECRET_PARAM.sub(lambda m: f"{m.group(0).split('=', 1)[0]}=[redacted]", query)


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access-log record: its third argument is the path with the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())
