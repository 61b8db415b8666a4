"""Model names -> engines: served ids, exact aliases, and glob aliases such as `claude-*`.

Built from the configuration by `service.runtime.build_registry`."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from rolecall.core.conversation import OutputSettings
from rolecall.core.errors import NotFound
from rolecall.engines.base import Engine

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
    output: OutputSettings = field(default_factory=OutputSettings)  # ModelConfig.max_output_tokens, .sampling

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
