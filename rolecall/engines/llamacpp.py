"""The embedded engine: llama.cpp's server in a supervised child process, spoken to over OpenAI's API.

A child process keeps a crash or a bad model file from taking the API down, and leaves the API
process's event loop and GIL free for HTTP work. The child listens on loopback behind a random key.

Supervision: if the child dies, `/health` turns unhealthy, requests get 529 with a clear message, and
the engine is started again with exponential backoff, without restarting rolecall.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

from rolecall.core.chunks import EngineBatch
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import Overloaded, UpstreamError
from rolecall.engines.base import EngineInfo
from rolecall.engines.openai_upstream import OpenAIChatEngine

log = logging.getLogger("rolecall.engine")

_LOG_TAIL = 60  # engine log lines kept to explain a failed start
_STOP_GRACE = 10.0
_RESTART_BACKOFF = (0.5, 30.0)  # seconds: first delay after a failed restart, and the ceiling
_RESTARTING = "Overloaded: the embedded engine stopped and is being restarted"
_SMALL_MACHINE = 4  # cores; at most this many, llama.cpp gets all but one (docs/performance.md)


def default_threads(cores: int | None = None) -> int | None:
    """llama.cpp's thread count when the config names none. On a small machine, all cores but one: its
    threads spin-wait at every step's barrier, so when rolecall (HTTP, SSE) or anything else takes a core
    from one of them, every step waits for it; on 2 cores one thread streamed more tokens per second
    end to end than two. None on larger machines: llama.cpp's own default."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores - 1) if cores <= _SMALL_MACHINE else None


class EngineStartError(RuntimeError):
    """The engine process exited or gave up before it was ready."""


class EmbeddedLlamaCpp:
    def __init__(
        self,
        model_path: Path,
        *,
        context: int,
        parallel: int,
        threads: int | None = None,
        start_timeout: float = 300.0,
        progress: Callable[[str], None] = log.info,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.model_path = model_path
        self._api_key = secrets.token_urlsafe(32)
        self._parallel = parallel
        self._settings = {
            "model_path": str(model_path),
            "n_ctx": context,
            "n_parallel": parallel,
            "n_threads": threads or default_threads(),
            "api_key": self._api_key,
        }
        self._start_timeout = start_timeout
        self._progress = progress
        self._process: asyncio.subprocess.Process | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL)
        self._stderr_task: asyncio.Task[None] | None = None
        self._client: OpenAIChatEngine | None = None
        self._url = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = stopping  # rolecall is shutting down: an engine that exits now is not restarted
        self.restarts = 0  # times the engine was started again after dying
        self.info = EngineInfo(context_window=context, slots=parallel)

    async def start(self) -> None:
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _launch(self) -> None:
        size_mib = self.model_path.stat().st_size / 2**20
        self._progress(f"loading {self.model_path.name} ({size_mib:.0f} MiB) into llama.cpp ...")
        began = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rolecall.engines.llamacpp_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: Ctrl-C in a terminal signals the whole foreground process group, and the
            # engine must keep generating while rolecall lets in-flight streams finish. It stops when
            # rolecall closes its stdin (or dies), never on a signal meant for rolecall.
            start_new_session=True,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(self._settings).encode() + b"\n")
        await self._process.stdin.drain()
        url = self._url = await self._wait_ready(began)
        # A restart listens on the same port: worker processes (`--workers`) keep the URL they were given.
        self._settings["port"] = urlsplit(url).port
        client = OpenAIChatEngine(url, api_key=self._api_key)
        await client.start()
        self.info = dataclasses.replace(client.info, slots=self._parallel)
        self._client = client
        self._progress(
            f"engine ready in {time.monotonic() - began:.1f} s ({self.info.context_window} tokens of context)"
        )

    async def _wait_ready(self, began: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        line_task = asyncio.ensure_future(self._process.stdout.readline())
        try:
            while True:
                done, _ = await asyncio.wait({line_task}, timeout=2.0)
                if done:
                    break
                waited = time.monotonic() - began
                if waited > self._start_timeout:
                    raise EngineStartError(f"engine not ready after {waited:.0f} s")
                self._progress(f"  still loading ({waited:.0f} s) ...")
        finally:
            line_task.cancel()
        line = line_task.result()
        if not line:
            await self._process.wait()
            await asyncio.sleep(0.1)  # let the stderr reader catch the last lines
            tail = "\n".join(list(self._log_tail)[-15:])
            raise EngineStartError(f"engine exited with code {self._process.returncode}:\n{tail}")
        return json.loads(line)["url"]

    async def _supervise(self) -> None:
        """Wait for the child to exit; unless rolecall is closing, start it again, backing off on failures."""
        while True:
            assert self._process is not None
            code = await self._process.wait()
            if self._shutting_down:
                log.info("embedded engine exited with code %s during shutdown", code)
                return
            log.error("embedded engine exited with code %s; restarting it", code)
            await self._drop_client()
            delay = _RESTART_BACKOFF[0]
            while not self._shutting_down:
                try:
                    await self._launch()
                    break
                except (EngineStartError, UpstreamError, OSError) as exc:
                    log.error("engine restart failed (%s); next try in %.1f s", exc, delay)
                    await self._kill()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RESTART_BACKOFF[1])
            self.restarts += 1

    @property
    def _shutting_down(self) -> bool:
        return self._closing or self._stopping()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def _drain_stderr(self) -> None:
        # Always drain: a full pipe would block the engine. The tail explains a failed start.
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self._log_tail.append(line)
            log.debug("llama.cpp: %s", line)

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        await self._drop_client()
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # the worker's cue to shut down
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()

    @property
    def endpoint(self) -> tuple[str, str]:
        """The engine's own loopback URL and key, for benchmarks that compare against it."""
        return self._url, self._api_key

    @property
    def pid(self) -> int | None:
        """The engine process (supervision tests kill it)."""
        return self._process.pid if self._process is not None else None

    async def healthy(self) -> bool:
        alive = self._process is not None and self._process.returncode is None
        return alive and self._client is not None and await self._client.healthy()

    async def count_tokens(self, request: GenerationRequest) -> int:
        client = self._running()
        try:
            return await client.count_tokens(request)
        except UpstreamError:
            if await self._died():  # it died under this request: say so, as before the 200 we still can
                raise Overloaded(_RESTARTING, retry_after=2) from None
            raise

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        client = self._running()
        try:
            return await client.render_prompt(request)
        except UpstreamError:
            if await self._died():
                raise Overloaded(_RESTARTING, retry_after=2) from None
            raise

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]:
        return self._running().generate(request)

    def _running(self) -> OpenAIChatEngine:
        if self._client is None or self._process is None or self._process.returncode is not None:
            raise Overloaded(_RESTARTING, retry_after=2)
        return self._client

    async def _died(self) -> bool:
        """After a failed call: is the engine gone (rather than refusing this one request)?"""
        client = self._client
        if self._process is None or self._process.returncode is not None or client is None:
            return True
        return not await client.healthy()  # quick either way: 200 from a live engine, refused from a dead one
