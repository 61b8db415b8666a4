"""`rolecall serve --workers N`: the parent process. It binds the port once, starts the embedded engines
(one each, not N), runs the coordinator that the workers share admission, affinity and /metrics through, and
supervises N worker processes serving the one socket: a worker that dies is started again, SIGTERM or
Ctrl-C drains every worker within `shutdown_grace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from rolecall.cli.serve import base_url, bind
from rolecall.service.registry import ModelRegistry
from rolecall.service.runtime import build_registry
from rolecall.service.signing_secret import thinking_secret
from rolecall.service.workers.coordinator import Coordinator
from rolecall.service.workers.share import WorkerShare, embedded_endpoints, publish_health
from rolecall.settings import Settings

log = logging.getLogger("rolecall")

_RESTART_BACKOFF = (0.5, 30.0)  # seconds: the delay after a worker died young, and its ceiling
_YOUNG = 10.0  # a worker that dies within this many seconds of its start backs off before the next
_EXIT_MARGIN = 15.0  # seconds past the grace (and the workers' own margin) before a worker is killed


def serve_workers(settings: Settings) -> None:
    """Serve with `settings.workers` processes until SIGTERM or Ctrl-C. The address is bound first, as
    with one process, so a busy port is `CannotListen` at once."""
    listener = bind(settings.host, settings.port)
    with listener:
        _run(_Supervisor(settings, listener).run())


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed (uvicorn[standard] brings it), as the workers' uvicorn runs: the
    coordinator answers the workers' messages with about a quarter less CPU than on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def worker_setup(settings: Settings, share: WorkerShare, number: int, fd: int) -> dict[str, Any]:
    """The line worker `number` reads on its stdin (cli/worker_process.py)."""
    return {
        # Only what was set: a default left alone must stay a default there too (an upstream's context is
        # probed only while `context` is unset).
        "settings": settings.model_dump(mode="json", exclude_unset=True),
        "share": {**share.to_wire(), "number": number},
        "fd": fd,
    }


def worker_settings(sent: dict[str, Any]) -> Settings:
    """The settings a worker serves with: what the parent sent, as the parent read it. The config file is not
    read again (it may have changed since); values the parent left unset are unset here too."""
    os.environ.pop("ROLECALL_CONFIG", None)
    return Settings.model_validate({name: value for name, value in sent.items() if name != "config"})


class _Supervisor:
    def __init__(self, settings: Settings, listener: socket.socket) -> None:
        self.settings = settings
        self.listener = listener
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stop = asyncio.Event()
        self.signals = 0
        self.listening: set[int] = set()
        self.announced = False
        self.coordinator: Coordinator | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        # The coordinator's socket lives in a directory only this user can enter (mkdtemp makes it 0700).
        with tempfile.TemporaryDirectory(prefix="rolecall-") as private:
            coordinator = self.coordinator = Coordinator(
                Path(private) / "coordinator.sock", on_listening=self._on_listening
            )
            await coordinator.start()
            # The embedded engines run here, once; so do the upstream replicas' health probes.
            shared = [model for model in self.settings.models if model.engine in ("llamacpp", "openai")]
            engines = build_registry(shared, stopping=self.stop.is_set)
            publish_health(engines, coordinator)
            try:
                if await self._until_stopped(engines.start()):
                    await self._supervise(coordinator, engines)
            finally:
                await coordinator.close()
                await engines.close()
        log.info("rolecall: stopped")

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` unless a stop comes first (Ctrl-C while a model loads): True if it finished."""
        task = asyncio.create_task(work)
        stopped = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        task.result()
        return True

    async def _supervise(self, coordinator: Coordinator, engines: ModelRegistry) -> None:
        share = WorkerShare(
            0,
            coordinator.path,
            thinking_secret(self.settings.thinking_secret, self.settings.data_dir),
            embedded_endpoints(engines),
        )
        keepers = [asyncio.create_task(self._keep(number, share)) for number in range(1, self.settings.workers + 1)]
        await self.stop.wait()
        _, late = await asyncio.wait(keepers, timeout=self.settings.shutdown_grace + _EXIT_MARGIN)
        for number, process in self.processes.items():
            if process.returncode is None:
                log.warning("rolecall: worker %d did not stop in time; killing it", number)
                process.kill()
        await asyncio.gather(*late, return_exceptions=True)

    async def _keep(self, number: int, share: WorkerShare) -> None:
        """Keep worker `number` running until the stop; one that dies is replaced."""
        delay = _RESTART_BACKOFF[0]
        while not self.stop.is_set():
            began = time.monotonic()
            process = await self._spawn(number, share)
            code = await process.wait()
            if self.stop.is_set():
                return
            log.error("rolecall: worker %d (pid %d) exited with code %s; starting another", number, process.pid, code)
            if time.monotonic() - began < _YOUNG:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                delay = min(delay * 2, _RESTART_BACKOFF[1])
            else:
                delay = _RESTART_BACKOFF[0]

    async def _spawn(self, number: int, share: WorkerShare) -> asyncio.subprocess.Process:
        fd = self.listener.fileno()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rolecall.cli.worker_process",
            stdin=asyncio.subprocess.PIPE,
            pass_fds=(fd,),
            # Its own session: Ctrl-C in a terminal reaches the parent only, which tells each worker once.
            start_new_session=True,
        )
        self.processes[number] = process
        assert process.stdin is not None
        process.stdin.write(json.dumps(worker_setup(self.settings, share, number, fd)).encode() + b"\n")
        await process.stdin.drain()
        process.stdin.close()
        log.info("rolecall: worker %d started (pid %d)", number, process.pid)
        return process

    def _on_signal(self, sig: int) -> None:
        # The first signal drains every worker (each gives its streams the grace period); a second Ctrl-C
        # ends the streams at once, as it does with one process.
        self.signals += 1
        now = self.signals > 1 and sig == signal.SIGINT
        if self.signals == 1 and self.processes:
            log.info(
                "rolecall: stopping %d workers (in-flight requests get %gs)",
                len(self.processes),
                self.settings.shutdown_grace,
            )
        elif self.signals == 1:
            log.info("rolecall: stopping before the workers started")
        self.stop.set()
        # Through the channel (see CoordinatorLink.on_drain); a worker not connected yet gets the signal.
        reached = self.coordinator.tell_all({"op": "exit" if now else "drain"}) if self.coordinator else set()
        for number, process in self.processes.items():
            if process.returncode is None and number not in reached:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT if now else signal.SIGTERM)

    def _on_listening(self, number: int) -> None:
        """Worker `number` listens; once all have (the first time), the address is worth printing."""
        self.listening.add(number)
        if len(self.listening) == self.settings.workers and not self.announced:
            self.announced = True
            log.info(
                "rolecall: serving %s with %d workers  (Messages API at /v1/messages and /anthropic/v1/messages; "
                "Ctrl-C stops)",
                base_url(self.settings.host, self.listener.getsockname()[1]),
                self.settings.workers,
            )
