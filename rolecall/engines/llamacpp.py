"""The embedded engine: llama.cpp's server in a supervised child process, spoken to over OpenAI's API.

A child process keeps a crash or a bad model file from taking the API down, and leaves the API
process's event loop and GIL free for HTTP work. The child listens on loopback behind a random key.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from rolecall.engines.base import EngineChunk, EngineInfo
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.protocol.errors import UpstreamError
from rolecall.shaping.conversation import GenerationRequest

log = logging.getLogger("rolecall.engine")

_LOG_TAIL = 60  # engine log lines kept to explain a failed start
_STOP_GRACE = 10.0


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
    ) -> None:
        self.model_path = model_path
        self._settings = {
            "model_path": str(model_path),
            "n_ctx": context,
            "n_parallel": parallel,
            "n_threads": threads,
            "api_key": secrets.token_urlsafe(32),
        }
        self._start_timeout = start_timeout
        self._progress = progress
        self._process: asyncio.subprocess.Process | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL)
        self._stderr_task: asyncio.Task[None] | None = None
        self._client: OpenAIChatEngine | None = None
        self._url = ""
        self.info = EngineInfo(context_window=context)

    async def start(self) -> None:
        size_mib = self.model_path.stat().st_size / 2**20
        self._progress(f"loading {self.model_path.name} ({size_mib:.0f} MiB) into llama.cpp ...")
        began = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rolecall.engines.llamacpp_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(self._settings).encode() + b"\n")
        await self._process.stdin.drain()
        url = self._url = await self._wait_ready(began)
        self._client = OpenAIChatEngine(url, api_key=self._settings["api_key"])
        await self._client.start()
        self.info = self._client.info
        self._progress(f"engine ready in {time.monotonic() - began:.1f} s ({self.info.context_window} tokens of context)")

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

    async def _drain_stderr(self) -> None:
        # Always drain: a full pipe would block the engine. The tail explains a failed start.
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self._log_tail.append(line)
            log.debug("llama.cpp: %s", line)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # the worker's cue to shut down
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()

    @property
    def endpoint(self) -> tuple[str, str]:
        """The engine's own loopback URL and key, for benchmarks that compare against it."""
        return self._url, self._settings["api_key"]

    async def healthy(self) -> bool:
        alive = self._process is not None and self._process.returncode is None
        return alive and self._client is not None and await self._client.healthy()

    async def count_tokens(self, request: GenerationRequest) -> int:
        return await self._running().count_tokens(request)

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineChunk]:
        return self._running().generate(request)

    def _running(self) -> OpenAIChatEngine:
        if self._client is None or self._process is None or self._process.returncode is not None:
            raise UpstreamError("the embedded engine is not running")
        return self._client
