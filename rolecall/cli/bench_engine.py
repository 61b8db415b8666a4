"""`rolecall bench --compare embedded`: the llama.cpp engine rolecall runs for a model, started by the CLI
itself and measured directly. rolecall's own engine cannot be reached from outside (a random loopback port
behind a random key), so the baseline is a second engine built from the same configuration: same file,
context, slots and threads. `rolecall/bench` stays free of the server's code; this glue lives in the CLI."""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from rolecall.service.embedded import standalone_engine
from rolecall.settings import ModelConfig, Settings

EMBEDDED = "embedded"  # the --compare value that asks for this


def embedded_model(config: str | None, name: str) -> ModelConfig:
    """The embedded model rolecall would serve `name` with (from `config`, ROLECALL_CONFIG or the default:
    the bundled model); the first embedded one when no name matches. ValueError when there is none."""
    settings = Settings(config=config) if config else Settings()
    embedded = [model for model in settings.models if model.engine == "llamacpp"]
    if not embedded:
        raise ValueError('--compare embedded needs a model with engine = "llamacpp" in the configuration')
    for model in embedded:
        if name == model.id or any(fnmatch.fnmatchcase(name, alias) for alias in model.aliases):
            return model
    return embedded[0]


@asynccontextmanager
async def embedded_engine(model: ModelConfig, progress: Callable[[str], None]) -> AsyncIterator[tuple[str, str]]:
    """Start the model's engine as rolecall would; yield its chat-completions URL and key; stop it."""
    async with standalone_engine(
        model.gguf, context=model.context, parallel=model.parallel, threads=model.threads, progress=progress
    ) as endpoint:
        yield endpoint
