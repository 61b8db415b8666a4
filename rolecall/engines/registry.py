"""Model names -> engines: served ids, exact aliases, and glob aliases such as `claude-*`."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from rolecall.core.errors import NotFound
from rolecall.engines.base import Engine
from rolecall.engines.bundled import resolve_gguf
from rolecall.engines.fake import ScriptedEngine
from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.engines.replicas import ReplicaSet
from rolecall.settings import ModelConfig

_GLOB_CHARS = frozenset("*?[")


@dataclass
class ServedModel:
    id: str
    engine: Engine
    display_name: str
    created_at: str  # RFC 3339
    aliases: list[str] = field(default_factory=list)
    # How to read this model's output and offer it tools: ModelConfig.reasoning, .tool_parser, .prompted_tools.
    reasoning: Literal["auto", "field", "tags", "none"] = "auto"
    tool_parser: Literal["hermes", "minimax_m2"] | None = None
    prompted_tools: Literal["always", "forced", "never"] = "always"

    @property
    def exact_aliases(self) -> list[str]:
        return [a for a in self.aliases if not _GLOB_CHARS & set(a)]

    @property
    def glob_aliases(self) -> list[str]:
        return [a for a in self.aliases if _GLOB_CHARS & set(a)]


class ModelRegistry:
    def __init__(self, models: list[ServedModel]) -> None:
        self.models = models
        self._by_name: dict[str, ServedModel] = {}
        for model in models:
            for name in (model.id, *model.exact_aliases):
                self._by_name.setdefault(name, model)

    def resolve(self, name: str) -> ServedModel:
        """The model serving `name`, or 404 `not_found_error` naming the served models (what to ask for instead)."""
        model = self._by_name.get(name)
        if model is not None:
            return model
        for candidate in self.models:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in candidate.glob_aliases):
                return candidate
        served = ", ".join(model.id for model in self.models)
        raise NotFound(f"model: {name} not found; served models: {served}")

    def listed_names(self) -> list[tuple[str, ServedModel]]:
        """Every listable name (ids, then exact aliases), in configuration order."""
        return [(name, model) for model in self.models for name in (model.id, *model.exact_aliases)]

    async def start(self) -> None:
        for model in self.models:
            await model.engine.start()

    async def close(self) -> None:
        for model in self.models:
            await model.engine.close()


def build_registry(configs: list[ModelConfig], progress: Callable[[str], None] | None = None) -> ModelRegistry:
    """Engines for the configured models; nothing starts until `ModelRegistry.start`."""
    report = progress or logging.getLogger("rolecall.engine").info
    served = []
    for config in configs:
        if config.engine == "llamacpp":
            path = resolve_gguf(config.gguf)
            engine: Engine = EmbeddedLlamaCpp(
                path, context=config.context, parallel=config.parallel, threads=config.threads, progress=report
            )
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        elif config.engine == "openai":
            engine = _replica_set(config, report)
            created = datetime.now(UTC)
        else:
            engine = ScriptedEngine(context_window=config.context)
            created = datetime(2024, 11, 1, tzinfo=UTC)
        served.append(
            ServedModel(
                id=config.id,
                engine=engine,
                display_name=config.display_name or config.id,
                created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                aliases=list(config.aliases),
                reasoning=config.reasoning,
                tool_parser=config.tool_parser,
                prompted_tools=config.prompted_tools,
            )
        )
    return ModelRegistry(served)


def _replica_set(config: ModelConfig, progress: Callable[[str], None]) -> ReplicaSet:
    """The `openai` engine: one client per upstream URL, all behind one balancer."""
    key = config.upstream_api_key()
    context = config.context if config.context_configured else None
    engines = [
        OpenAIChatEngine(
            url,
            api_key=key,
            upstream_model=config.upstream_model,
            context_window=context,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
        for url in config.upstreams
    ]
    return ReplicaSet(engines, context_window=context, health_interval=config.health_interval, progress=progress)
