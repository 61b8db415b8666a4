"""`/metrics` and the API docs need a key whenever keys are configured: metrics name internal details
(upstream replicas, models, traffic) and the docs map every route. `/health` stays open and says
only up/down per model, so load balancers need no key."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from rolecall.app.auth import Authenticator

_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})


class OperatorPaths:
    """ASGI layer (inside RequestContext, which turns a refusal into the Anthropic 401 envelope).

    `/metrics` accepts any API key (config or store) or `metrics_key`; the docs accept any API key. With
    none of them (loopback only) both stay open."""

    def __init__(self, app: ASGIApp, auth: Authenticator, metrics_key: str | None) -> None:
        self.app = app
        self._auth = auth
        self._metrics_key = Authenticator([metrics_key]) if metrics_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].rstrip("/") or "/"
            if path == "/metrics":
                self._check_metrics(scope)
            elif path in _DOCS:
                self._auth.check_scope(scope)
        await self.app(scope, receive, send)

    def _check_metrics(self, scope: Scope) -> None:
        if self._metrics_key is None:
            self._auth.check_scope(scope)
            return
        headers = Headers(scope=scope)
        try:
            self._metrics_key.check(headers)
        except Exception:
            if self._auth.open:
                raise  # the metrics key is the only key there is
            self._auth.check(headers)
