"""Typed errors: each knows its HTTP status, its kind (`error_type`) and MiniMax's base_resp code.

Handlers never build error JSON by hand: each door's encoder renders its own envelope from these.
"""

from __future__ import annotations


class RolecallError(Exception):
    """Base of every error a client may see."""

    status = 500
    error_type = "api_error"
    code = 1000

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    @property
    def should_retry(self) -> bool:
        """The SDKs' rule: retry 408, 409, 429 and every 5xx (529 included)."""
        return self.status in (408, 409, 429) or self.status >= 500

    def headers(self) -> dict[str, str]:
        headers = {"x-should-retry": "true" if self.should_retry else "false"}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(0, round(self.retry_after)))
        return headers


class InvalidRequest(RolecallError):
    status, error_type, code = 400, "invalid_request_error", 2013


class PromptTooLong(InvalidRequest):
    """Claude Code parses this exact wording to trigger auto-compaction."""

    code = 1039

    def __init__(self, prompt_tokens: int, maximum: int) -> None:
        super().__init__(f"prompt is too long: {prompt_tokens} tokens > {maximum} maximum")


class MissingCredentials(RolecallError):
    status, error_type, code = 401, "authentication_error", 1004


class InvalidCredentials(RolecallError):
    status, error_type, code = 401, "authentication_error", 2049


class NotFound(RolecallError):
    status, error_type, code = 404, "not_found_error", 2013


class MethodNotAllowed(RolecallError):
    status, error_type, code = 405, "invalid_request_error", 2013


class PermissionDenied(RolecallError):
    """The key may not do this (a model outside its allow-list)."""

    status, error_type, code = 403, "permission_error", 1004


class RequestTimeout(RolecallError):
    """The client was too slow sending its request (headers or body)."""

    status, error_type, code = 408, "invalid_request_error", 2013


class RequestTooLarge(RolecallError):
    status, error_type, code = 413, "request_too_large", 2013


class HeadersTooLarge(RolecallError):
    status, error_type, code = 431, "request_too_large", 2013


class RateLimited(RolecallError):
    status, error_type, code = 429, "rate_limit_error", 1002


class InternalError(RolecallError):
    status, error_type, code = 500, "api_error", 1000


class UpstreamError(RolecallError):
    """The engine failed or answered something rolecall cannot use (rolecall is its gateway: 502)."""

    status, error_type, code = 502, "api_error", 1013


class EngineTimeout(RolecallError):
    status, error_type, code = 504, "timeout_error", 1001


class ServiceBusy(RolecallError):
    """Every connection rolecall allows is open: a new one is refused before its request is read."""

    status, error_type, code = 503, "overloaded_error", 1002


class Overloaded(RolecallError):
    status, error_type, code = 529, "overloaded_error", 1002
