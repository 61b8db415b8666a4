"""Before a generation: resolve the model, let the door shape its request, count the prompt exactly as it
will be served and fit the output to the context window. Everything here fails with an HTTP error,
before a stream commits to 200."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import PromptTooLong
from rolecall.service.registry import ServedModel
from rolecall.service.runtime import Runtime
from rolecall.shaping.thinking import SignaturePolicy
from rolecall.shaping.traits import EngineTraits, Shaper


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated request, counted and fitted to the context window: ready to generate."""

    requested_model: str
    model: ServedModel
    generation: GenerationRequest
    prompt_tokens: int
    received_at: float


async def count_prompt(runtime: Runtime, model_name: str, shape: Shaper) -> tuple[ServedModel, GenerationRequest, int]:
    """Resolve `model_name`, shape the door's request for it, and count the prompt as it will be served."""
    model = runtime.registry.resolve(model_name)
    info = model.engine.info
    prompted = "never" if info.template_tools else model.prompted_tools
    traits = EngineTraits(model_name, vision=info.vision, prompted_tools=prompted, json_schema=info.json_schema)
    signatures = SignaturePolicy(runtime.signer, model.id, lenient=runtime.settings.thinking_signatures == "lenient")
    generation = shape(traits, signatures)
    return model, generation, await model.engine.count_tokens(generation)


async def prepare(runtime: Runtime, model_name: str, shape: Shaper) -> PreparedCall:
    """A call ready to start: counted, refused if the prompt fills the context, output clamped to the rest."""
    received_at = time.perf_counter()
    model, generation, prompt_tokens = await count_prompt(runtime, model_name, shape)
    window = model.engine.info.context_window
    if prompt_tokens >= window:
        raise PromptTooLong(prompt_tokens, window - 1)
    # Output beyond the context window is clamped (finish reason "length"), not rejected.
    room = window - prompt_tokens
    if generation.max_tokens > room:
        generation = dataclasses.replace(generation, max_tokens=room)
    return PreparedCall(model_name, model, generation, prompt_tokens, received_at)
