"""One Messages request end to end. Streaming and non-streaming share `message_events`:
the JSON body is the fold of the very events a stream sends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from rolecall.core.chunks import EngineChunk, FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import PromptTooLong
from rolecall.engines.registry import ServedModel
from rolecall.parsing.stops import StopMatcher
from rolecall.protocol import events as ev
from rolecall.protocol.ids import new_id
from rolecall.protocol.requests import CountTokensRequest, MessagesRequest
from rolecall.service.assembler import BlockAssembler
from rolecall.service.engine_output import EngineOutput
from rolecall.service.runtime import Runtime
from rolecall.shaping.messages import EngineTraits, to_generation
from rolecall.shaping.thinking import SignaturePolicy

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated request, counted and fitted to the context window: ready to generate."""

    requested_model: str
    model: ServedModel
    generation: GenerationRequest
    prompt_tokens: int
    received_at: float


async def count_prompt(
    runtime: Runtime, request: MessagesRequest | CountTokensRequest, betas: frozenset[str] = frozenset()
) -> tuple[ServedModel, GenerationRequest, int]:
    """Resolve the model, shape the conversation and count its prompt exactly as it will be served."""
    model = runtime.registry.resolve(request.model)
    info = model.engine.info
    prompted = "never" if info.template_tools else model.prompted_tools
    traits = EngineTraits(model_name=request.model, vision=info.vision, prompted_tools=prompted)
    lenient = runtime.settings.thinking_signatures == "lenient"
    signatures = SignaturePolicy(runtime.signer, model.id, lenient=lenient)
    generation = to_generation(request, traits, signatures, betas)
    return model, generation, await model.engine.count_tokens(generation)


async def prepare(runtime: Runtime, request: MessagesRequest, betas: frozenset[str] = frozenset()) -> PreparedCall:
    """Everything that can fail with an HTTP error happens here, before a stream commits to 200."""
    received_at = time.perf_counter()
    model, generation, prompt_tokens = await count_prompt(runtime, request, betas)
    window = model.engine.info.context_window
    if prompt_tokens >= window:
        raise PromptTooLong(prompt_tokens, window - 1)
    # Output beyond the context window or the model's cap is clamped (stop_reason max_tokens), not rejected.
    generation = model.output.fit(generation, room=window - prompt_tokens)
    return PreparedCall(request.model, model, generation, prompt_tokens, received_at)


# How long a new generation may take to fail before a stream commits to 200: failures of the engine
# call itself (every replica overloaded or down) come back within it as HTTP errors (529, 503...),
# while a long prefill does not hold the response headers back.
EARLY_FAILURE_WINDOW = 1.0


@dataclass(slots=True)
class OpenedGeneration:
    """An engine stream that has started; `first` is the pending (or done) read of its first chunk."""

    chunks: AsyncIterator[EngineChunk]
    first: asyncio.Future[EngineChunk | None]
    closed: bool = False

    async def close(self) -> None:
        """End the engine stream (which cancels the generation); safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        if not self.first.done():
            self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first  # a read in flight must end before the stream can be closed
        await self.chunks.aclose()  # type: ignore[attr-defined]


async def open_generation(call: PreparedCall, window: float = EARLY_FAILURE_WINDOW) -> OpenedGeneration:
    """Start generating; an engine failure within `window` seconds is raised here, before any event."""
    chunks = call.model.engine.generate(call.generation)
    opened = OpenedGeneration(chunks, asyncio.ensure_future(anext(chunks, None)))
    try:
        await asyncio.wait({opened.first}, timeout=window)
        if opened.first.done() and opened.first.exception() is not None:
            raise opened.first.exception()  # type: ignore[misc]
    except BaseException:
        await opened.close()
        raise
    return opened


async def message_events(
    runtime: Runtime, call: PreparedCall, opened: OpenedGeneration
) -> AsyncGenerator[ev.Event, None]:
    """The Anthropic event stream for one prepared call, from its opened engine stream."""
    yield ev.message_start(new_id("msg_"), call.requested_model, call.prompt_tokens)
    yield ev.PING
    turn = _TurnInProgress(runtime, call)
    try:
        try:
            chunk = await opened.first
            while chunk is not None:
                for event in turn.on_chunk(chunk):
                    yield event
                if turn.ended_early:
                    break  # closing the engine stream cancels the generation
                chunk = await anext(opened.chunks, None)
        finally:
            await opened.close()
        for event in turn.finish():
            yield event
        yield ev.message_delta(turn.stop_reason(), turn.stops.matched, turn.usage())
        yield ev.MESSAGE_STOP
    finally:
        # Also when the client left mid-way: what was generated still counts.
        runtime.metrics.record_usage(call.model.id, turn.usage())


class _TurnInProgress:
    """The state of one generated turn: engine chunks in, content-block events out."""

    def __init__(self, runtime: Runtime, call: PreparedCall) -> None:
        signer, model_id = runtime.signer, call.model.id
        self.assembler = BlockAssembler(lambda text: signer.sign(text, model_id))
        generation = call.generation
        self.stops = StopMatcher(generation.stop_sequences)
        # With tool_choice none, markup the model writes anyway stays text.
        markup = call.model.tool_parser if generation.tool_mode != "none" else None
        self._output = EngineOutput(
            call.model.reasoning, generation.tool_syntax or markup, generation.tools, generation.parallel_tool_calls
        )
        self._single_call = not generation.parallel_tool_calls
        self._second_call_cut = False
        self._keep_reasoning = generation.thinking != "disabled"
        self._call = call
        self._metrics = runtime.metrics
        self._finish: str | None = None
        self._engine_usage: UsageChunk | None = None
        self._generated = 0  # our own count, for when the stream is cut before the engine reports usage
        self._first_content_seen = False

    def on_chunk(self, chunk: EngineChunk) -> list[ev.Event]:
        if isinstance(chunk, (TextChunk, ReasoningChunk, ToolCallChunk)):
            self._generated += 1
        events: list[ev.Event] = []
        for parsed in self._output.feed(chunk):
            events.extend(self._on_parsed(parsed))
        return events

    def _on_parsed(self, chunk: EngineChunk) -> list[ev.Event]:
        events: list[ev.Event] = []
        if isinstance(chunk, TextChunk):
            visible = self.stops.feed(chunk.text)
            if visible:
                events = self.assembler.text(visible)
        elif isinstance(chunk, ReasoningChunk):
            if self._keep_reasoning:
                events = self.assembler.thinking(chunk.text)
            else:
                self.assembler.hidden_thinking()
        elif isinstance(chunk, ToolCallChunk):
            if self._single_call and self.assembler.tool_uses and self.assembler.starts_new_call(chunk):
                self._second_call_cut = True  # disable_parallel_tool_use: the turn ends after the first call
                return []
            events = self.assembler.tool_call(chunk)
        elif isinstance(chunk, FinishChunk):
            self._finish = chunk.reason
        elif isinstance(chunk, UsageChunk):
            self._engine_usage = chunk
        if events and not self._first_content_seen:
            self._first_content_seen = True
            self._metrics.ttft.labels(self._call.model.id).observe(time.perf_counter() - self._call.received_at)
        return events

    @property
    def ended_early(self) -> bool:
        """The turn is complete before the engine finished: a stop sequence matched, or a second call began."""
        return self.stops.matched is not None or self._second_call_cut

    def finish(self) -> list[ev.Event]:
        """Release what the parsers and the stop matcher held back, then close the last block."""
        events: list[ev.Event] = []
        for parsed in self._output.flush():
            events.extend(self._on_parsed(parsed))
        rest = self.stops.flush()
        return events + (self.assembler.text(rest) if rest else []) + self.assembler.finish()

    def stop_reason(self) -> str:
        if self.stops.matched is not None:
            return "stop_sequence"
        if self.assembler.tool_uses and self._finish != "length":
            return "tool_use"
        return _STOP_REASONS.get(self._finish or "stop", "end_turn")

    def usage(self) -> dict:
        prompt_tokens = self._call.prompt_tokens
        reported = self._engine_usage
        if reported is None:
            return ev.usage(prompt_tokens, self._generated)
        cached = min(reported.cached_tokens, prompt_tokens)
        return ev.usage(prompt_tokens - cached, max(reported.completion_tokens, 0), cached)
