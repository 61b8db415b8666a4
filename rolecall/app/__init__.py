"""The thin ASGI layer: routes, auth, SSE and error handling over the service."""

from rolecall.app.factory import create_app

__all__ = ["create_app"]
