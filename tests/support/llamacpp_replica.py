"""Real llama.cpp servers as upstream replicas: each a separate `rolecall.engines.llamacpp_worker`
process (xllamacpp) that the test owns, so it can kill one like a crashed machine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rolecall.engines.bundled import resolve_gguf


@dataclass
class LlamaCppReplica:
    url: str
    process: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL: no goodbye, open connections just break."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def llamacpp_replica(
    api_key: str, *, context: int = 2048, parallel: int = 2, threads: int = 1
) -> Iterator[LlamaCppReplica]:
    """Start the bundled model in its own llama.cpp server; stop it (if still alive) on exit."""
    settings = {
        "model_path": str(resolve_gguf("bundled")),
        "n_ctx": context,
        "n_parallel": parallel,
        "n_threads": threads,
        "api_key": api_key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rolecall.engines.llamacpp_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(settings).encode() + b"\n")
        process.stdin.flush()
        line = process.stdout.readline()  # the ready line; empty if the worker died
        if not line:
            raise RuntimeError(f"llama.cpp replica exited with code {process.wait()}")
        yield LlamaCppReplica(json.loads(line)["url"], process)
    finally:
        if process.poll() is None:
            process.stdin.close()  # the worker's cue to shut down
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
