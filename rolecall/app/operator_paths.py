"""`/metrics` and the API docs need a key whenever keys are configured: metrics name internal details
(upstream replicas, models, traffic) and the docs map every route. `/health` stays open and says
only up/down per model, so load balancers need no key."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from rolecall.app.auth import Authenticator

_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})


class OperatorPaths:
    """ASGI layer (inside RequestContext, which turns a refusal into the Anthropic 401 envelope).

    `/metrics` accepts any API key or `metrics_key`; the docs accept any API key. With neither
    configured (loopback only) both stay open."""

    def __init__(self, app: ASGIApp, api_keys: list[str], metrics_key: str | None) -> None:
        self.app = app
        self._docs = Authenticator(api_keys)
        self._metrics = Authenticator([*api_keys, *([metrics_key] if metrics_key else [])])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].rstrip("/") or "/"
            if path == "/metrics":
                self._metrics.check_scope(scope)
            elif path in _DOCS:
                self._docs.check_scope(scope)
        await self.app(scope, receive, send)
