"""`rolecall serve`: load the configured models and serve the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from rolecall.app import create_app
from rolecall.app.auth import key_id
from rolecall.cli.keys import store_failure
from rolecall.cli.server_config import server_config
from rolecall.service.runtime import check_models, store_has_keys, store_location
from rolecall.settings import ModelConfig, SamplingDefaults, Settings, public_url

log = logging.getLogger("rolecall")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve the Messages API (default: the bundled model on 127.0.0.1:8000)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; ROLECALL_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; ROLECALL_PORT)")
    parser.add_argument("--config", help="TOML config file (ROLECALL_CONFIG)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted API key; repeat for several (ROLECALL_API_KEYS, comma-separated)",
    )
    parser.add_argument(
        "--model",
        metavar="PATH.gguf",
        help="serve this .gguf instead of the bundled model, named after the file (with a config file: "
        "in place of the first model's gguf)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes serving the port, sharing one embedded engine and one admission queue "
        "(default 1; ROLECALL_WORKERS)",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(ROLECALL_LOG_LEVEL)")
    parser.set_defaults(run=run)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: value
        for name in ("host", "port", "config", "api_keys", "log_level", "workers")
        if (value := getattr(args, name)) is not None
    }
    settings = Settings(**overrides)
    if args.model:
        first, *rest = settings.models
        update: dict[str, object] = {"gguf": args.model}
        if "models" not in settings.model_fields_set:
            # In place of the bundled model: served under the file's own name, still answering its aliases. The
            # bundled model's output settings were chosen for a 135M model; another model samples as its engine does.
            update |= {
                "id": Path(args.model).stem,
                "display_name": None,
                "max_output_tokens": None,
                "sampling": SamplingDefaults(),
            }
        settings = settings.model_copy(update={"models": [first.model_copy(update=update), *rest]})
    return settings


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
        check_models(settings)  # a missing model file is a config error, not a traceback
    except (ValidationError, OSError, ValueError) as exc:
        source = args.config or os.environ.get("ROLECALL_CONFIG")
        where = f" (config file {source})" if source and isinstance(exc, ValidationError) else ""
        print(f"rolecall: invalid configuration{where}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s", stream=sys.stderr)
    logging.getLogger("rolecall").setLevel(settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call is noise
    try:
        stored_keys = asyncio.run(store_has_keys(settings))  # also: a wrong database_url stops here, in one line
    except Exception as exc:
        print(store_failure(settings, exc), file=sys.stderr)
        return 2
    if not settings.api_keys and not settings.loopback_only and not stored_keys:
        print(
            f"rolecall: refusing to listen on {settings.host} without API keys; "
            "create one with `rolecall keys create NAME`, or pass --api-key KEY or set ROLECALL_API_KEYS",
            file=sys.stderr,
        )
        return 2
    _announce(settings, stored_keys)
    for model in settings.models:
        if model.api_key_env and model.upstream_api_key() is None:
            log.warning(
                "  model %s: $%s (api_key_env) is not set; its upstreams get no API key", model.id, model.api_key_env
            )
    try:
        if settings.workers > 1:
            from rolecall.cli.workers import serve_workers  # only then: the one-worker path imports nothing more

            serve_workers(settings)
        else:
            serve_forever(create_app(settings), settings)
    except CannotListen as exc:
        print(f"rolecall: {exc}", file=sys.stderr)
        return 2
    return 0


_CLOSE_MARGIN = 5.0  # seconds after the grace period for the last `error` events to go out
# Seconds between uvicorn's housekeeping ticks (the Date header, the exit check). Its own loop ticks ten times a
# second, most of an idle server's wake-ups; a stop does not wait for the tick (`_Server.handle_exit` wakes it).
_TICK = 1.0


def serve_forever(app: FastAPI, settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C: stop accepting, give in-flight requests `shutdown_grace` seconds to
    finish, then end the rest with an `error` event. The address is bound first, before any model loads,
    so a busy port is `CannotListen` at once rather than after minutes of loading."""
    host = settings.host
    listener = bind(host, settings.port)
    server = draining_server(app, settings)
    server.on_listening = lambda: log.info(
        "rolecall: serving %s  (Messages API at /v1/messages and /anthropic/v1/messages; Ctrl-C stops)",
        base_url(host, listener.getsockname()[1]),
    )
    with listener:
        server.run(sockets=[listener])


def draining_server(app: FastAPI, settings: Settings) -> _Server:
    """The uvicorn server `rolecall serve` runs (one per worker with `--workers`): on SIGTERM or Ctrl-C it
    stops accepting and gives in-flight requests `shutdown_grace` seconds."""
    grace = settings.shutdown_grace
    config = server_config(app, settings, timeout_graceful_shutdown=math.ceil(grace + _CLOSE_MARGIN))
    drain = getattr(getattr(app, "state", None), "drain", None)
    _tune_gc()
    return _Server(config, on_exit=(lambda: drain.begin(grace)) if drain is not None else None)


class CannotListen(Exception):
    """The address cannot be bound; the message says why and what to do."""


_BIND_HINTS = {
    errno.EADDRINUSE: "another process is listening there; pick a free port with --port "
    "(ROLECALL_PORT, or make serve PORT=...)",
    errno.EACCES: "ports below 1024 need privileges; pick a port above 1024 with --port",
    errno.EADDRNOTAVAIL: "this machine has no such address; use 127.0.0.1, ::1, 0.0.0.0 or one of its own (--host)",
}


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port`, not yet listening (connections are refused until the
    models have loaded and uvicorn listens on it)."""
    where = base_url(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: unknown host {host!r} ({exc.strerror})") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop
        listener.bind(address)
    except OSError as exc:
        listener.close()
        hint = _BIND_HINTS.get(exc.errno or 0, "check --host and --port")
        raise CannotListen(f"cannot listen on {where}: {exc.strerror or exc}; {hint}") from None
    return listener


def base_url(host: str, port: int) -> str:
    """`http://host:port`, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _tune_gc() -> None:
    """Each request allocates thousands of short-lived containers; at CPython's default threshold (700)
    the collector ran ~300 times a second under load and took 10-15 % of the CPU (docs/performance.md).
    Freezing what start-up built keeps full collections from walking it; a higher first threshold
    makes young collections rare. Reference cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


# SIGTERMs this close together are one stop sent twice (systemd and `kill -- -PGID` signal every process in the
# group, and `make serve` forwards the SIGTERM it got itself), not a second request. A second Ctrl-C always is:
# `make` does not forward SIGINT.
_SAME_STOP = 0.5


class _Server(uvicorn.Server):
    """SIGTERM or Ctrl-C asks rolecall to stop: once in-flight requests have finished (or the grace period
    has ended them) and the engines are down, exit 0 (uvicorn re-raises the signal, which supervisors
    would report as a crash, and a terminal as a KeyboardInterrupt traceback). A second Ctrl-C exits at once."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_listening: Callable[[], None] = lambda: None
        self._first_signal_at: float | None = None
        self._stop = asyncio.Event()  # set on the first stop: ends `main_loop` without waiting for its tick

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the engines are up and the socket listens: only now is the address worth printing
            self.on_listening()

    async def serve(self, sockets: list | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def main_loop(self) -> None:
        """uvicorn's main loop, ticking once a second instead of ten times (`on_tick` still refreshes the Date
        header every second); a stop ends it at once."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # `on_tick` refreshes the Date header when counter % 10 == 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), _TICK)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._first_signal_at is None:
            self._first_signal_at = now
        elif sig == signal.SIGTERM and now - self._first_signal_at <= _SAME_STOP:
            return  # the same stop, delivered twice (a group-wide kill, `make` passing its own SIGTERM on)
        else:
            _exit_now(sig)
        super().handle_exit(sig, frame)
        if self._loop is not None:
            # A signal handler may not touch the loop's state directly: hand the calls over.
            self._loop.call_soon_threadsafe(self._stop.set)
            if self._on_exit is not None:
                self._loop.call_soon_threadsafe(self._on_exit)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals = [s for s in self._captured_signals if s not in (signal.SIGTERM, signal.SIGINT)]


def _exit_now(sig: int) -> NoReturn:
    """A second Ctrl-C (or SIGTERM) during the drain: the user wants out now. uvicorn's forced exit would
    cancel every task and print each cancelled stream's traceback (~120 lines), so exit here, in one line.
    The engine processes stop on their own: their stdin closes with this process (llamacpp_worker)."""
    name = "Ctrl-C" if sig == signal.SIGINT else signal.Signals(sig).name
    # Plain writes: a signal handler may interrupt the logging module while it holds its lock.
    os.write(2, f"rolecall: second {name}, stopping now; streams still running were cut off\n".encode())
    os._exit(128 + sig)


def _announce(settings: Settings, stored_keys: bool = False) -> None:
    """What is about to be served; the address follows once it listens."""
    log.info("rolecall: starting on %s", base_url(settings.host, settings.port))
    for model in settings.models:
        names = ", ".join([model.id, *model.aliases])
        if model.engine == "openai":
            _announce_replicas(model)
            continue
        source = f"gguf={model.gguf}" if model.engine == "llamacpp" else model.engine
        log.info(
            "  model %-26s <- %s  [%s, context %d, %d slots]", model.id, names, source, model.context, model.parallel
        )
    if settings.api_keys:
        # Never the keys themselves: a short hash prefix tells which keys are loaded.
        prints = ", ".join(key_id(key) for key in settings.api_keys)
        log.info(
            "  auth: %d API key(s) required (x-api-key or Authorization: Bearer; sha256 %s)",
            len(settings.api_keys),
            prints,
        )
    elif stored_keys:
        log.info("  auth: API keys from the store required (`rolecall keys list`)")
    else:
        log.info("  auth: off - no API keys yet (`rolecall keys create NAME`), any request is accepted (loopback only)")
    log.info("  store: %s (keys: `rolecall keys`, usage: `rolecall usage`)", store_location(settings))
    if settings.cors_origins:
        log.info("  CORS: allowed origins %s", ", ".join(settings.cors_origins))


def _announce_replicas(model: ModelConfig) -> None:
    """The replica table of an `openai` model (each replica's kind and context follow once probed)."""
    names = ", ".join([model.id, *model.aliases])
    context = f"context {model.context}" if model.context_configured else "context probed"
    upstream = model.upstream_model or "(the upstream's first model)"
    log.info("  model %-26s <- %s  [openai -> %s, %s]", model.id, names, upstream, context)
    log.info("    %-3s %-40s %s", "#", "replica", "balancing")
    for number, url in enumerate(model.upstreams, 1):
        log.info("    %-3d %-40s least outstanding, conversation affinity", number, public_url(url))
    log.info(
        "    timeouts: connect %gs, first byte %s, between chunks %gs; health probe every %gs%s",
        model.connect_timeout,
        f"{model.first_byte_timeout:g}s" if model.first_byte_timeout else "30s (llama.cpp: the read timeout)",
        model.read_timeout,
        model.health_interval,
        f"; key from ${model.api_key_env}" if model.api_key_env else "",
    )
