"""Each door renders its own error envelope. Which door a request came through is told by its path
(`/v1/messages` is Anthropic's, `/v1/chat/completions` OpenAI's, ...); a path no door claims (an unknown
route, the operational routes) gets the default door's envelope, Anthropic's, as before there were others.

The route-level handlers here and the last-resort handler in `RequestContext` both ask `DoorErrors`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from rolecall.core.errors import InvalidRequest, MethodNotAllowed, NotFound, RolecallError

# A door's error response: the typed error and the request id -> the response in that door's envelope.
ErrorRenderer = Callable[[RolecallError, str | None], Response]


class DoorErrors:
    """Path prefix -> the door's error renderer; the longest registered prefix wins."""

    def __init__(self, default: ErrorRenderer) -> None:
        self._default = default
        self._by_prefix: list[tuple[str, ErrorRenderer]] = []

    def register(self, prefix: str, renderer: ErrorRenderer) -> None:
        """Requests whose path is `prefix` or lies under it get `renderer`'s envelope."""
        self._by_prefix.append((prefix.rstrip("/"), renderer))
        self._by_prefix.sort(key=lambda entry: len(entry[0]), reverse=True)

    def for_path(self, path: str) -> ErrorRenderer:
        for prefix, renderer in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return renderer
        return self._default

    def render(self, path: str, error: RolecallError, request_id: str | None) -> Response:
        return self.for_path(path)(error, request_id)


def install_error_handlers(app: FastAPI, doors: DoorErrors) -> None:
    """Typed errors, routing errors (404/405) and FastAPI's own validation errors, in the door's envelope."""

    def respond(request: Request, error: RolecallError) -> Response:
        record = getattr(request.state, "ledger", None)
        if record is not None:  # its ledger row carries the error's status (MiniMax's door answers 200)
            record.failed(error.status)
        return doors.render(request.url.path, error, request.state.request_id)

    async def rolecall_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RolecallError)
        return respond(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            error: RolecallError = MethodNotAllowed(f"Method {request.method} not allowed for {request.url.path}")
        elif exc.status_code == 404:
            error = NotFound(f"Not found: {request.method} {request.url.path}")
        else:
            error = InvalidRequest(str(exc.detail))
            error.status = exc.status_code
        return respond(request, error)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return respond(request, InvalidRequest(str(exc)))

    app.add_exception_handler(RolecallError, rolecall_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
