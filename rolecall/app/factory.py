"""create_app(settings): the ASGI application, its lifespan (engines start and stop) and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from rolecall import __version__
from rolecall.app import admin, anthropic, batches, characters, minimax, openai, ops, playground, render
from rolecall.app.auth import Authenticator
from rolecall.app.context import RequestContext, ServedApp
from rolecall.app.docs_page import install_docs
from rolecall.app.errors import DoorErrors, install_error_handlers
from rolecall.app.openapi import install_openapi
from rolecall.app.operator_paths import OperatorPaths
from rolecall.service.batches.runner import BatchRunner
from rolecall.service.drain import Drain
from rolecall.service.metrics import Metrics
from rolecall.service.registry import ModelRegistry
from rolecall.service.runtime import Runtime, build_registry, start_runtime, start_store
from rolecall.service.workers.share import WorkerShare
from rolecall.settings import Settings


def create_app(settings: Settings, registry: ModelRegistry | None = None, share: WorkerShare | None = None) -> FastAPI:
    """The rolecall app. `registry` replaces the configured engines (tests pass scripted ones); `share` makes
    it one of several workers (`rolecall serve --workers N`), sharing what the parent shares."""
    metrics = Metrics()
    drain = Drain()  # the CLI starts its grace period on SIGTERM

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models = registry or build_registry(settings.models, stopping=lambda: drain.begun, share=share)
        store = await start_store(settings, metrics)
        auth.store = store.keys
        runtime: Runtime | None = None
        runner: BatchRunner | None = None
        try:
            runtime = app.state.runtime = await start_runtime(settings, models, metrics, drain, store, share)
            runner = _batch_runner(runtime, settings, auth, share)
            yield
        finally:
            if runner is not None:
                await runner.close()  # first: the batch requests it runs stop and go back to pending
            if runtime is not None:
                await runtime.limiter.close()
            if share is not None:
                await share.link.close()
            await models.close()
            await store.close()  # after the engines: the last requests' ledger rows are written

    app = ServedApp(
        title="rolecall",
        version=__version__,
        description="MiniMax's text APIs (Messages, chat completions, chatcompletion_v2) for open models",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # install_docs: the same page, with its assets served locally
        redoc_url=None,  # ReDoc too loads from a CDN; /docs is enough
    )
    auth = app.state.auth = Authenticator(settings.api_keys)  # the store's keys join at start-up
    app.state.drain = drain
    # Errors on paths no door claims (unknown routes, ops) keep Anthropic's envelope, as before there were others.
    doors = DoorErrors(default=anthropic.error_response)
    for prefix in ("", "/anthropic"):
        app.include_router(anthropic.router, prefix=prefix)
        app.include_router(batches.router, prefix=prefix)
        doors.register(f"{prefix}/v1/messages", anthropic.error_response)
    for door in (openai, minimax):
        app.include_router(door.router)
        doors.register(door.PATH, door.error_response)
    app.state.door_errors = doors
    app.include_router(ops.router)
    app.include_router(admin.router)
    app.include_router(render.router)
    app.include_router(render.router, prefix="/anthropic")
    app.include_router(characters.router)
    app.include_router(playground.router)
    install_openapi(app)
    install_docs(app)
    install_error_handlers(app, doors)
    if settings.cors_origins:  # browsers may call rolecall only from origins on the allow-list
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["request-id"],
        )
    app.add_middleware(OperatorPaths, auth=auth, metrics_key=settings.metrics_key)
    # The generation routes, whose requests each leave one ledger row.
    ledger_doors = {"/v1/messages": "anthropic", "/anthropic/v1/messages": "anthropic"}
    ledger_doors |= {openai.PATH: "openai", minimax.PATH: "minimax"}
    app.add_middleware(RequestContext, metrics=metrics, doors=doors, ledger_doors=ledger_doors)
    return app


def _batch_runner(
    runtime: Runtime, settings: Settings, auth: Authenticator, share: WorkerShare | None
) -> BatchRunner | None:
    """Start this instance's batch runner: one per instance (with several workers, in the first; claims are safe
    with more), none with `batch_concurrency = 0`."""
    if runtime.batches is None or not settings.batch_concurrency or (share is not None and share.number != 1):
        return None
    runner = BatchRunner(runtime, runtime.batches, auth.caller_named, settings.batch_concurrency, settings.batch_lease)
    runner.start()
    return runner
