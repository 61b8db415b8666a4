"""Everything a request needs, built once in the app's lifespan (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

from rolecall.engines.registry import ModelRegistry
from rolecall.service.admission import Admission
from rolecall.service.drain import Drain
from rolecall.service.metrics import Metrics
from rolecall.settings import Settings
from rolecall.shaping.thinking import ThinkingSigner


@dataclass
class Runtime:
    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    signer: ThinkingSigner
    admission: Admission
    drain: Drain
