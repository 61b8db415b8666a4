"""Before a generation: resolve the model, let the door shape its request, make sure the prompt fits the context
window and fit the output to the rest. Everything here fails with an HTTP error, before a stream commits to 200.

The prompt is counted exactly as it will be served (a request to the engine) unless the engine's own stream will
tell its size and a cheap upper bound shows it cannot matter: then the message costs one engine request."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import PromptTooLong
from rolecall.service.registry import ServedModel
from rolecall.service.runtime import Runtime
from rolecall.shaping.thinking import SignaturePolicy
from rolecall.shaping.traits import EngineTraits, Shaper

# Tokens a chat template may add around the turns: role markers, a default system prompt, tool instructions.
TEMPLATE_ALLOWANCE = 1024
PER_TURN = 16


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated request, fitted to the context window: ready to generate. `prompt_tokens` is None when
    the engine's stream will tell it (the prompt surely fits, so no count was needed)."""

    requested_model: str
    model: ServedModel
    generation: GenerationRequest
    prompt_tokens: int | None
    received_at: float


def shape_for(runtime: Runtime, model_name: str, shape: Shaper) -> tuple[ServedModel, GenerationRequest]:
    """Resolve `model_name` and shape the door's request for what its engine can do."""
    model = runtime.registry.resolve(model_name)
    info = model.engine.info
    prompted = "never" if info.template_tools else model.prompted_tools
    traits = EngineTraits(model_name, vision=info.vision, prompted_tools=prompted, json_schema=info.json_schema)
    signatures = SignaturePolicy(runtime.signer, model.id, lenient=runtime.settings.thinking_signatures == "lenient")
    return model, shape(traits, signatures)


async def count_prompt(runtime: Runtime, model_name: str, shape: Shaper) -> tuple[ServedModel, GenerationRequest, int]:
    """Resolve `model_name`, shape the door's request for it, and count the prompt as it will be served."""
    model, generation = shape_for(runtime, model_name, shape)
    return model, generation, await model.engine.count_tokens(generation)


async def prepare(runtime: Runtime, model_name: str, shape: Shaper) -> PreparedCall:
    """A call ready to start: refused if the prompt fills the context, output clamped to the rest. The prompt
    is counted (a request to the engine) only when the engine's stream will not tell its size, or when the
    prompt may come near the end of the context window."""
    received_at = time.perf_counter()
    model, generation = shape_for(runtime, model_name, shape)
    window = model.engine.info.context_window
    if model.engine.info.streams_prompt_count:
        bound = prompt_bound(generation)
        if bound is not None and bound < window:
            fitted = model.output.fit(generation, room=window - bound)
            if fitted.max_tokens == model.output.fit(generation, room=window).max_tokens:
                return PreparedCall(model_name, model, fitted, None, received_at)
    prompt_tokens = await model.engine.count_tokens(generation)
    if prompt_tokens >= window:
        raise PromptTooLong(prompt_tokens, window - 1)
    # Output beyond the context window or the model's cap is clamped (finish reason "length"), not rejected;
    # the model's sampling defaults fill what the client left out.
    generation = model.output.fit(generation, room=window - prompt_tokens)
    return PreparedCall(model_name, model, generation, prompt_tokens, received_at)


def prompt_bound(request: GenerationRequest) -> int | None:
    """At least as many tokens as the prompt will have, without tokenizing: no token of a byte-level (or
    byte-fallback) tokenizer covers less than one byte of text, so a prompt's tokens are at most its bytes
    plus what the template adds. Tool schemas count twice (templates may pretty-print them). None for
    images, whose token cost depends on the model."""
    size = TEMPLATE_ALLOWANCE
    for turn in request.turns:
        if turn.images:
            return None
        size += PER_TURN + len(turn.text.encode()) + len((turn.reasoning or "").encode())
        for call in turn.tool_calls:
            size += PER_TURN + len(call.id) + len(call.name.encode()) + len(call.arguments.encode())
    for tool in request.tools:
        size += PER_TURN + 2 * (len(tool.name) + len(tool.description.encode()) + len(orjson.dumps(tool.parameters)))
    return size
