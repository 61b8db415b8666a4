"""Bounded HTTP connections: uvicorn's httptools protocol with the limits it lacks.

uvicorn holds a connection that never sends a request, or sends it a byte a second, for as long as the
client likes, and accepts any number of headers of any size. Each connection costs a file descriptor
and a buffer, so a few thousand slow clients take a server down. This protocol adds, per connection:

- an idle timeout before the first byte of the first request (uvicorn's keep-alive timeout covers the
  gap between later requests),
- a header timeout from a request's first byte to the end of its headers (slowloris),
- a body rate: every `body_timeout` seconds at least `min_body_rate` bytes/s must have arrived (a trickled
  or never-finished chunked body), measured only while rolecall is reading,
- caps on header bytes and header count (431),
- a cap on open connections: one past it is answered 503 and closed before its request is read.

A client that breaks a limit before its answer started gets 408/431/503 in the Anthropic error envelope
with `connection: close`; the connection is closed either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from rolecall.core.errors import HeadersTooLarge, RequestTimeout, RolecallError, ServiceBusy
from rolecall.protocol.anthropic.errors import error_envelope

log = logging.getLogger("rolecall.connections")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may cost (settings.py documents each)."""

    idle_timeout: float
    header_timeout: float
    body_timeout: float
    min_body_rate: int
    max_header_bytes: int
    max_headers: int
    max_connections: int


_REFUSAL_LOG_EVERY = 10.0


class _Refusals:
    """Connections answered 408/431/503, logged at most once per `_REFUSAL_LOG_EVERY` seconds with counts:
    a flood of bad connections must not become a flood of log lines."""

    def __init__(self) -> None:
        self.unlogged: Counter[int] = Counter()
        self.logged_at = -_REFUSAL_LOG_EVERY

    def count(self, error: RolecallError, peer: str) -> None:
        self.unlogged[error.status] += 1
        now = time.monotonic()
        if now - self.logged_at >= _REFUSAL_LOG_EVERY:
            counts = ", ".join(f"{n}× {status}" for status, n in sorted(self.unlogged.items()))
            log.warning("refused connections (%s); last: %s %s", counts, peer, error.message)
            self.unlogged.clear()
            self.logged_at = now


class _HeaderLimit(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are over a cap."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """One client connection. `limits` is set on the subclass `bounded_protocol` makes."""

    limits: ConnectionLimits
    refusals: _Refusals

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # no request in progress: the next bytes start one
        self._raw_header_bytes = 0  # bytes received since the request began, while its headers are incomplete
        self._header_bytes = 0  # parsed: the URL and every name and value
        self._header_count = 0
        self._body_bytes = 0
        self._window_start = 0  # body bytes at the start of the current rate window
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            busy = f"Too many open connections ({self.limits.max_connections}); retry shortly (max_connections)"
            self._refuse(ServiceBusy(busy, retry_after=1))
            return
        self._arm(self.limits.idle_timeout, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._awaiting_headers:
            if self._raw_header_bytes == 0:
                self._arm(self.limits.header_timeout, self._headers_expired)
            self._raw_header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeaderLimit):
                self._refuse(HeadersTooLarge(str(exc.__context__)))
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._awaiting_headers and self._raw_header_bytes > self.limits.max_header_bytes:
            self._refuse(HeadersTooLarge(_too_large_message(self.limits)))

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers:
            raise _HeaderLimit(f"Request has more than {self.limits.max_headers} headers (max_headers)")
        if self._header_bytes > self.limits.max_header_bytes:
            raise _HeaderLimit(_too_large_message(self.limits))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()
        if not self.parser.should_upgrade():
            self._body_bytes = self._window_start = 0
            self._arm(self.limits.body_timeout, self._check_body_rate)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        self._raw_header_bytes = 0
        super().on_response_complete()

    # Limits

    def _idle_expired(self) -> None:
        if self._raw_header_bytes == 0 and not self.transport.is_closing():
            self.transport.close()  # nothing was asked: a plain close, like a keep-alive timeout

    def _headers_expired(self) -> None:
        self._refuse(RequestTimeout(f"Request headers not received within {self.limits.header_timeout:g} s"))

    def _check_body_rate(self) -> None:
        if self.cycle is None or not self.cycle.more_body or self.transport.is_closing():
            return
        window = self.limits.body_timeout
        if not self.flow.read_paused:  # while rolecall is not reading, the client cannot send: no verdict
            arrived = self._body_bytes - self._window_start
            if arrived < self.limits.min_body_rate * window:
                self._refuse(
                    RequestTimeout(
                        f"Request body too slow: {arrived} bytes in {window:g} s, "
                        f"below {self.limits.min_body_rate} bytes/s (min_body_rate)"
                    )
                )
                return
        self._window_start = self._body_bytes
        self._arm(window, self._check_body_rate)

    def _refuse(self, error: RolecallError) -> None:
        """Answer `error` (unless an answer already started) and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_raw_response(error))
            self.refusals.count(error, _peer(self.client))
        if self.cycle is not None and not self.cycle.response_complete:
            # The app (if it runs) hears a disconnect at once, and whatever it sends goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self._disarm()
        self.send_400_response(msg)

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpProtocol]:
    """The protocol class to pass as uvicorn's `http=`, bound to these limits."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits, "refusals": _Refusals()})


def _too_large_message(limits: ConnectionLimits) -> str:
    return f"Request headers exceed {limits.max_header_bytes} bytes (max_header_bytes)"


def _raw_response(error: RolecallError) -> bytes:
    body = orjson.dumps(error_envelope(error, None))
    head = [STATUS_LINE[error.status]]
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **error.headers(),
    }
    head.extend(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    return b"".join([*head, b"\r\n", body])


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "client"
