"""One Messages request end to end. Streaming and non-streaming share `message_events`:
the JSON body is the fold of the very events a stream sends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from rolecall.engines.base import FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.engines.registry import ServedModel
from rolecall.parsing.stops import StopMatcher
from rolecall.protocol import events as ev
from rolecall.protocol.errors import PromptTooLong
from rolecall.protocol.ids import new_id
from rolecall.protocol.requests import CountTokensRequest, MessagesRequest
from rolecall.service.assembler import BlockAssembler
from rolecall.service.runtime import Runtime
from rolecall.shaping.conversation import GenerationRequest
from rolecall.shaping.messages import EngineTraits, to_generation

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated request, counted and fitted to the context window: ready to generate."""

    requested_model: str
    model: ServedModel
    generation: GenerationRequest
    prompt_tokens: int
    received_at: float


async def count_prompt(runtime: Runtime, request: MessagesRequest | CountTokensRequest) -> tuple[ServedModel, GenerationRequest, int]:
    """Resolve the model, shape the conversation and count its prompt exactly as it will be served."""
    model = runtime.registry.resolve(request.model)
    traits = EngineTraits(model_name=request.model, vision=model.engine.info.vision)
    generation = to_generation(request, traits)
    return model, generation, await model.engine.count_tokens(generation)


async def prepare(runtime: Runtime, request: MessagesRequest) -> PreparedCall:
    """Everything that can fail with an HTTP error happens here, before a stream commits to 200."""
    received_at = time.perf_counter()
    model, generation, prompt_tokens = await count_prompt(runtime, request)
    window = model.engine.info.context_window
    if prompt_tokens >= window:
        raise PromptTooLong(prompt_tokens, window - 1)
    # Output beyond the context window is clamped (stop_reason max_tokens), not rejected.
    room = window - prompt_tokens
    if generation.max_tokens > room:
        generation = dataclasses.replace(generation, max_tokens=room)
    return PreparedCall(request.model, model, generation, prompt_tokens, received_at)


async def message_events(runtime: Runtime, call: PreparedCall) -> AsyncIterator[ev.Event]:
    """The Anthropic event stream for one prepared call."""
    generation = call.generation
    yield ev.message_start(new_id("msg_"), call.requested_model, call.prompt_tokens)
    yield ev.PING
    signer, model_id = runtime.signer, call.model.id
    assembler = BlockAssembler(lambda text: signer.sign(text, model_id))
    stops = StopMatcher(generation.stop_sequences)
    keep_reasoning = generation.thinking != "disabled"
    finish: str | None = None
    usage: UsageChunk | None = None
    generated = 0  # our own count, for when the stream is cut before the engine reports usage
    first_token_at: float | None = None
    async with aclosing(call.model.engine.generate(generation)) as chunks:
        async for chunk in chunks:
            kind = type(chunk)
            if kind is TextChunk:
                generated += 1
                visible = stops.feed(chunk.text)
                if visible:
                    for event in assembler.text(visible):
                        yield event
                if stops.matched is not None:
                    break
            elif kind is ReasoningChunk:
                generated += 1
                if keep_reasoning:
                    for event in assembler.thinking(chunk.text):
                        yield event
                else:
                    assembler.hidden_thinking()
            elif kind is ToolCallChunk:
                generated += 1
                for event in assembler.tool_call(chunk):
                    yield event
            elif kind is FinishChunk:
                finish = chunk.reason
            elif kind is UsageChunk:
                usage = chunk
            if first_token_at is None and assembler.started:
                first_token_at = time.perf_counter()
                runtime.metrics.ttft.labels(model_id).observe(first_token_at - call.received_at)
    rest = stops.flush()
    if rest:
        for event in assembler.text(rest):
            yield event
    for event in assembler.finish():
        yield event
    if stops.matched is not None:
        stop_reason = "stop_sequence"
    elif assembler.tool_uses and finish != "length":
        stop_reason = "tool_use"
    else:
        stop_reason = _STOP_REASONS.get(finish or "stop", "end_turn")
    final = _final_usage(call.prompt_tokens, usage, generated)
    metrics = runtime.metrics
    metrics.input_tokens.labels(model_id).inc(final["input_tokens"])
    metrics.cache_read_tokens.labels(model_id).inc(final["cache_read_input_tokens"])
    metrics.output_tokens.labels(model_id).inc(final["output_tokens"])
    yield ev.message_delta(stop_reason, stops.matched, final)
    yield ev.MESSAGE_STOP


def _final_usage(prompt_tokens: int, usage: UsageChunk | None, generated: int) -> dict:
    if usage is None:
        return ev.usage(prompt_tokens, generated)
    cached = min(usage.cached_tokens, prompt_tokens)
    return ev.usage(prompt_tokens - cached, max(usage.completion_tokens, 0), cached)
