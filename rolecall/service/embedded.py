"""One embedded llama.cpp engine on its own, outside any app: `rolecall bench --compare embedded` measures
it directly. rolecall's own engine sits on a random loopback port behind a random key; this is a second
one built from the same values (file, context, slots, threads), started and stopped by the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from rolecall.engines.bundled import resolve_gguf
from rolecall.engines.llamacpp import EmbeddedLlamaCpp, EngineStartError

__all__ = ["EngineStartError", "standalone_engine"]


@asynccontextmanager
async def standalone_engine(
    gguf: str, *, context: int, parallel: int, threads: int | None, progress: Callable[[str], None]
) -> AsyncIterator[tuple[str, str]]:
    """Start the engine as rolecall would; yield its chat-completions URL and key; stop it on exit."""
    engine = EmbeddedLlamaCpp(
        resolve_gguf(gguf), context=context, parallel=parallel, threads=threads, progress=progress
    )
    try:
        await engine.start()
        url, key = engine.endpoint
        yield url.rstrip("/") + "/v1/chat/completions", key
    finally:
        await engine.close()
