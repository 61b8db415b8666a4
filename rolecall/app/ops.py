"""Operational routes: liveness, metrics, the Claude Code probe and telemetry sink. Only `/metrics` needs
a key, when keys are configured (app/operator_paths.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from rolecall import __version__
from rolecall.app.responses import JSONResponse

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    # Claude Code's connectivity probe: answer at once, never touch the engine.
    return JSONResponse({"name": "rolecall", "version": __version__})


@router.get("/health", name="health")
async def health(request: Request) -> Response:
    registry = request.app.state.runtime.registry
    states = {model.id: ("ok" if await model.engine.healthy() else "unavailable") for model in registry.models}
    ok = all(state == "ok" for state in states.values())
    body: dict = {"status": "ok" if ok else "unavailable", "models": states}
    # For `openai` models, which replicas answer the health probe: they may come up after rolecall, or go down.
    replicas = {
        model.id: {replica.url: "up" if replica.reachable else "down" for replica in model.engine.status()}
        for model in registry.models
        if hasattr(model.engine, "status")
    }
    if replicas:
        body["replicas"] = replicas
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", name="metrics")
async def metrics(request: Request) -> Response:
    # With several workers, every worker's counters summed (the coordinator asks each).
    return Response(await request.app.state.runtime.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.post("/api/event_logging/batch", include_in_schema=False)
async def claude_code_telemetry() -> Response:
    # Claude Code posts telemetry here; a cheap 200 avoids retries and 404 log spam.
    return JSONResponse({})
