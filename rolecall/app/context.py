"""Outermost ASGI layer: a `request-id` on every response (errors too), a limited key's rate-limit
headers (`limit_headers`, which a route leaves in the request's state), trailing-slash tolerance without
redirects, request metrics, and a last-resort 500 in the envelope of the door the request came to."""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rolecall.app.errors import DoorErrors
from rolecall.app.responses import SERVER_SEND, ClientDisconnected, as_client_error
from rolecall.protocol.ids import new_id
from rolecall.service.accounting import CLIENT_GONE, RequestRecord
from rolecall.service.metrics import Metrics


class ServedApp(FastAPI):
    """The FastAPI app, which leaves the server's own `send` in each request's state (`SERVER_SEND`): a stream's
    body frames go straight to it (app/responses.body_sender). Here, because Starlette's error middleware, the
    outermost, wraps `send` for every middleware and route below it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[SERVER_SEND] = send  # the server gives each request a state of its own
        await super().__call__(scope, receive, send)


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, doors: DoorErrors, ledger_doors: dict[str, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.doors = doors
        self.ledger_doors = ledger_doors  # generation path -> door name: these requests get a ledger row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req_")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope["path"] = path.rstrip("/") or "/"
        door = self.ledger_doors.get(scope["path"]) if scope["method"] == "POST" else None
        record = RequestRecord(request_id, door) if door is not None else None
        state["ledger"] = record
        status = 500
        started = False
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                limits = [(name.encode(), value.encode()) for name, value in state.get("limit_headers", {}).items()]
                message["headers"] = [*message.get("headers", ()), header, *limits]
            await send(message)

        began = time.perf_counter()
        root_path = scope.get("root_path", "")
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnected:
            status = CLIENT_GONE  # the client went away before its answer: nobody to tell
        except Exception as exc:
            if started:
                raise
            error = as_client_error(exc)
            if record is not None:
                record.failed(error.status)
            response = self.doors.render(scope["path"], error, request_id)
            await response(scope, receive, send_with_id)
        finally:
            if record is not None:
                self._close_record(scope, record, status)
            self.metrics.in_flight.dec()
            label = _route_label(scope, root_path)
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - began)

    @staticmethod
    def _close_record(scope: Scope, record: RequestRecord, status: int) -> None:
        """The ledger row of a request that did not commit its own (an error, a generation cut short)."""
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is not None and runtime.store is not None:
            runtime.store.ledger.close_record(record, status)


def _route_label(scope: Scope, root_path: str) -> str:
    """The route a request matched, as its template (`/v1/messages`, `/docs/assets/{path}`), so the metrics
    have one series per route, never one per URL; "unmatched" only for a path no route answers.

    A mounted app (Swagger UI's files under /docs/assets) sets no `route`: the router has added the mount's
    path to `root_path` instead."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    mounted = scope.get("root_path", "")
    if mounted != root_path and mounted.startswith(root_path):
        return f"{mounted[len(root_path) :]}/{{path}}"
    return "unmatched"
