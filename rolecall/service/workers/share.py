"""What the parent hands each worker privately (on its stdin, never on a command line): the coordinator's
socket, the embedded engines' loopback URLs and internal keys, and the thinking secret."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.engines.replicas import ReplicaSet
from rolecall.service.registry import ModelRegistry
from rolecall.service.workers.coordinator import Coordinator
from rolecall.service.workers.link import CoordinatorLink


@dataclass
class WorkerShare:
    """One worker's view of what the parent shares."""

    number: int  # 1..N, for logs
    coordinator: Path
    secret: bytes  # signs thinking blocks: a signature made by one worker verifies on every other
    embedded: dict[str, tuple[str, str]] = field(default_factory=dict)  # model id -> (engine URL, internal key)
    link: CoordinatorLink = field(init=False)

    def __post_init__(self) -> None:
        self.link = CoordinatorLink(self.coordinator, self.number)

    def to_wire(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "coordinator": str(self.coordinator),
            "secret": self.secret.hex(),
            "embedded": self.embedded,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkerShare:
        embedded = {model: (url, key) for model, (url, key) in data["embedded"].items()}
        return cls(data["number"], Path(data["coordinator"]), bytes.fromhex(data["secret"]), embedded)


def publish_health(registry: ModelRegistry, coordinator: Coordinator) -> None:
    """The parent's replica sets probe for every worker: each round's answers go out through the coordinator."""
    for model in registry.models:
        if isinstance(model.engine, ReplicaSet):
            model.engine.on_probed(functools.partial(coordinator.publish_health, model.id))


def take_health(registry: ModelRegistry, link: CoordinatorLink) -> None:
    """A worker's replica sets judge their replicas by the parent's probes (they do not probe on their own)."""
    for model in registry.models:
        if isinstance(model.engine, ReplicaSet):
            link.health_readers[model.id] = model.engine.take_answers


def embedded_endpoints(registry: ModelRegistry) -> dict[str, tuple[str, str]]:
    """Model id -> (URL, key) of each started embedded engine (the parent starts only those)."""
    return {model.id: model.engine.endpoint for model in registry.models if isinstance(model.engine, EmbeddedLlamaCpp)}
