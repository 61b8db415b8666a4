"""Run a rolecall app under real uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from rolecall.app import create_app
from rolecall.cli.server_config import server_config
from rolecall.service.registry import ModelRegistry
from rolecall.service.workers.share import WorkerShare
from rolecall.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(
    settings: Settings,
    registry: ModelRegistry | None = None,
    log_level: str = "warning",
    share: WorkerShare | None = None,
) -> Iterator[str]:
    """Yield the base URL of a live server, configured as `rolecall serve` configures it (connection
    limits, log redaction); shut it down (lifespan included) on exit. With `share`, it is one of several
    workers sharing a coordinator (tests/support/workers.py)."""
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings, registry=registry, share=share)
    server = uvicorn.Server(server_config(app, settings, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
