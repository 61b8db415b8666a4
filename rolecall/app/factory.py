"""create_app(settings): the ASGI application, its lifespan (engines start and stop) and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from rolecall import __version__
from rolecall.app import ops, routes
from rolecall.app.auth import Authenticator
from rolecall.app.context import RequestContext
from rolecall.app.openapi import install_openapi
from rolecall.app.responses import error_response
from rolecall.core.errors import InvalidRequest, MethodNotAllowed, NotFound, RolecallError
from rolecall.engines.registry import ModelRegistry, build_registry
from rolecall.service.admission import Admission
from rolecall.service.drain import Drain
from rolecall.service.metrics import Metrics
from rolecall.service.runtime import Runtime
from rolecall.service.signing_secret import thinking_secret
from rolecall.settings import Settings
from rolecall.shaping.thinking import ThinkingSigner


def create_app(settings: Settings, registry: ModelRegistry | None = None) -> FastAPI:
    """The rolecall app. `registry` replaces the configured engines (tests pass scripted ones)."""
    metrics = Metrics()
    drain = Drain()  # the CLI starts its grace period on SIGTERM

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models = registry or build_registry(settings.models, stopping=lambda: drain.begun)
        try:
            await models.start()
            metrics.watch_replicas(models)
            signer = ThinkingSigner(thinking_secret(settings))
            admission = Admission.for_models(models.models, settings)
            app.state.runtime = Runtime(settings, models, metrics, signer, admission, drain)
            yield
        finally:
            await models.close()

    app = FastAPI(
        title="rolecall",
        version=__version__,
        description="MiniMax / Anthropic Messages API for open models",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.auth = Authenticator(settings.api_keys)
    app.state.drain = drain
    for prefix in ("", "/anthropic"):
        app.include_router(routes.router, prefix=prefix)
    app.include_router(ops.router)
    install_openapi(app)
    _install_error_handlers(app)
    if settings.cors_origins:  # browsers may call rolecall only from origins on the allow-list
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["request-id"],
        )
    app.add_middleware(RequestContext, metrics=metrics)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def rolecall_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RolecallError)
        return error_response(exc, request.state.request_id)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            error: RolecallError = MethodNotAllowed(f"Method {request.method} not allowed for {request.url.path}")
        elif exc.status_code == 404:
            error = NotFound(f"Not found: {request.method} {request.url.path}")
        else:
            error = InvalidRequest(str(exc.detail))
            error.status = exc.status_code
        return error_response(error, request.state.request_id)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return error_response(InvalidRequest(str(exc)), request.state.request_id)

    app.add_exception_handler(RolecallError, rolecall_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
