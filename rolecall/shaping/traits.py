"""What the shaping step must know about the model behind a request, and the shape of a door's shaper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from rolecall.core.conversation import GenerationRequest
from rolecall.shaping.thinking import SignaturePolicy


@dataclass(frozen=True, slots=True)
class EngineTraits:
    """What the shaping step must know about the model behind the request."""

    model_name: str
    vision: bool = False
    # The engine's chat template ignores tools, so rolecall writes them as text (shaping/tools.py): earlier
    # calls and results always; the tool signatures with every request that has tools ("always"), or only
    # when tool_choice forces a call ("forced"). "never": the engine's template is in charge.
    prompted_tools: Literal["never", "always", "forced"] = "never"
    json_schema: bool = True  # the engine can decode under a JSON schema (structured output, forced calls)


# A door's shaping of one decoded request, once the service has resolved the model: its traits and the
# policy for thinking signatures in history -> the neutral request (or `InvalidRequest`).
Shaper = Callable[[EngineTraits, SignaturePolicy], GenerationRequest]
