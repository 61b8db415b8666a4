"""One generated turn in progress: engine chunks in, neutral output events out (core.events).

Door-neutral: reasoning and tool-call markup are parsed out of the engine's output and the answer is cut at
a stop sequence (one chain of parser stages, service/engine_output), the block assembler keeps the block
lifecycle, and the finish reason and usage are worked out here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rolecall.core.chunks import (
    EngineChunk,
    FinishChunk,
    PrefillChunk,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from rolecall.core.events import FinishReason, OutputEvent
from rolecall.core.usage import Usage
from rolecall.parsing.stops import StopSequences
from rolecall.service.assembler import BlockAssembler
from rolecall.service.engine_output import engine_output
from rolecall.service.metrics import Metrics
from rolecall.service.prepare import PreparedCall
from rolecall.shaping.thinking import ThinkingSigner

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "end", "length": "length", "tool_calls": "tool_calls"}
_OUTPUT = frozenset({TextChunk, ReasoningChunk, ToolCallChunk})  # what counts as a generated token


class TurnInProgress:
    """The state of one generated turn: engine chunks in, content-block events out."""

    def __init__(self, call: PreparedCall, signer: ThinkingSigner, metrics: Metrics) -> None:
        model_id = call.model.id
        self.assembler = BlockAssembler(lambda text: signer.sign(text, model_id))
        generation = call.generation
        self.stops = StopSequences(generation.stop_sequences)  # the last stage of the chain; `matched` ends the turn
        # With tool_choice none, markup the model writes anyway stays text.
        markup = call.model.tool_parser if generation.tool_mode != "none" else None
        self._output = engine_output(
            call.model.reasoning,
            generation.tool_syntax or markup,
            generation.tools,
            generation.parallel_tool_calls,
            self.stops,
        )
        self._single_call = not generation.parallel_tool_calls
        self._second_call_cut = False
        self._keep_reasoning = generation.thinking != "disabled"
        self._call = call
        self._metrics = metrics
        self._finish: str | None = None
        self._engine_usage: UsageChunk | None = None
        self._cached: int | None = None  # the prompt's cached part, once the engine has told it (PrefillChunk)
        self._prompt_tokens = call.prompt_tokens  # None until the engine's stream tells it
        self._generated = 0  # our own count, for when the stream is cut before the engine reports usage
        self._first_content_seen = False

    def on_chunks(self, chunks: Sequence[EngineChunk]) -> list[OutputEvent]:
        """A batch of chunks (what one read of the engine's stream produced): their events, in order. The batch
        is read only up to the chunk that ends the turn early, as if the rest had never arrived."""
        events: list[OutputEvent] = []
        stops, feed, text = self.stops, self._output.feed, self.assembler.text
        for chunk in chunks:
            if type(chunk) in _OUTPUT:
                self._generated += 1
            for parsed in feed(chunk):
                # A token of the answer once the answer has begun (nearly every chunk): `_on_parsed`, inlined.
                if type(parsed) is TextChunk and self._first_content_seen:
                    if parsed.text:
                        events += text(parsed.text)
                else:
                    events += self._on_parsed(parsed)
            if stops.matched is not None or self._second_call_cut:  # `ended_early`, without a call per chunk
                break
        return events

    def on_chunk(self, chunk: EngineChunk) -> list[OutputEvent]:
        """One chunk: its events."""
        return self.on_chunks((chunk,))

    def _on_parsed(self, chunk: EngineChunk) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        if isinstance(chunk, TextChunk):
            if chunk.text:
                events = self.assembler.text(chunk.text)
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
            if self._prompt_tokens is None:
                self._prompt_tokens = chunk.prompt_tokens
        elif isinstance(chunk, PrefillChunk):
            self._cached = chunk.cached_tokens
            if self._prompt_tokens is None:
                self._prompt_tokens = chunk.prompt_tokens
        if events and not self._first_content_seen:
            self._first_content_seen = True
            self._metrics.ttft.labels(self._call.model.id).observe(time.perf_counter() - self._call.received_at)
        return events

    @property
    def ended_early(self) -> bool:
        """The turn is complete before the engine finished: a stop sequence matched, or a second call began."""
        return self.stops.matched is not None or self._second_call_cut

    def finish(self) -> list[OutputEvent]:
        """Release what the parser stages held back, then close the last block."""
        events: list[OutputEvent] = []
        for parsed in self._output.flush():
            events.extend(self._on_parsed(parsed))
        return events + self.assembler.finish()

    def finish_reason(self) -> FinishReason:
        if self.stops.matched is not None:
            return "stop_sequence"
        if self.assembler.tool_uses and self._finish != "length":
            return "tool_calls"
        return _FINISH_REASONS.get(self._finish or "stop", "end")

    @property
    def prompt_known(self) -> bool:
        """The prompt's token count is known: counted before generating, or told by the engine's stream."""
        return self._prompt_tokens is not None

    def count_prompt(self, tokens: int) -> None:
        """The prompt's count, for a stream that did not tell it before its first output."""
        self._prompt_tokens = tokens

    def prompt_usage(self) -> Usage:
        """The prompt before any output: its cached part as far as the engine has told it (else 0)."""
        prompt_tokens = self._prompt_tokens or 0
        return Usage(prompt_tokens, min(self._cached or 0, prompt_tokens))

    def usage(self) -> Usage:
        """The engine's final usage; without one (the stream was cut at a stop sequence), the prompt's split
        as the engine told it early and our own count of what was generated."""
        prompt_tokens = self._prompt_tokens or 0
        reported = self._engine_usage
        if reported is None:
            return Usage(prompt_tokens, min(self._cached or 0, prompt_tokens), self._generated)
        cached = min(reported.cached_tokens, prompt_tokens)
        return Usage(prompt_tokens, cached, max(reported.completion_tokens, 0))
