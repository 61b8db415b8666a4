"""The OpenAI chat-completions dialect: neutral turns out, stream chunks in."""

from __future__ import annotations

from typing import Any

from rolecall.core.chunks import (
    EngineChunk,
    EngineFinish,
    FinishChunk,
    PrefillChunk,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from rolecall.core.conversation import GenerationRequest, Turn

_FINISH: dict[str, EngineFinish] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


def chat_messages(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    """Turns as OpenAI chat messages. Reasoning goes in its own fields, never inside `content`."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.text}
        if turn.images:
            parts = [{"type": "text", "text": turn.text}] if turn.text else []
            message["content"] = parts + [{"type": "image_url", "image_url": {"url": url}} for url in turn.images]
        if turn.reasoning:
            # vLLM reads `reasoning` since late 2025; SGLang and llama.cpp read `reasoning_content`.
            message["reasoning_content"] = turn.reasoning
            message["reasoning"] = turn.reasoning
        if turn.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in turn.tool_calls
            ]
        if turn.tool_call_id is not None:
            message["tool_call_id"] = turn.tool_call_id
        messages.append(message)
    return messages


def prompt_payload(request: GenerationRequest) -> dict[str, Any]:
    """The part of a chat request that decides the rendered prompt (shared by generation and counting)."""
    payload: dict[str, Any] = {"messages": chat_messages(request.turns)}
    # With `tool_syntax` set the tools are already written into the turns (the template has no tool support).
    if request.tools and request.tool_mode != "none" and request.tool_syntax is None:
        payload["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
        payload["tool_choice"] = request.tool_mode
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    return payload


def chat_payload(
    request: GenerationRequest, model: str | None, *, llamacpp: bool = False, continuous_usage: bool = False
) -> dict[str, Any]:
    """A streaming chat-completions request. To llama.cpp it also asks for per-token `timings`: they carry
    `cache_n`, the prompt's cached part, from the first chunk on (the usage comes only at the end, and never
    if the stream is cut at a stop sequence), and `return_progress` sends a first chunk during prefill with
    the prompt's size. `continuous_usage` (vLLM, SGLang) puts usage on every chunk, the prompt's from the first."""
    payload = prompt_payload(request)
    if model is not None:
        payload["model"] = model
    payload["max_tokens"] = request.max_tokens
    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    if continuous_usage:
        payload["stream_options"]["continuous_usage_stats"] = True
    if llamacpp:
        payload["timings_per_token"] = True
        payload["return_progress"] = True
    if request.output_schema is not None:
        # Constrained decoding; llama.cpp, vLLM and SGLang all take OpenAI's json_schema response format.
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": request.output_schema, "strict": True},
        }
    sampling = request.sampling
    if sampling.temperature is not None:
        payload["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        payload["top_p"] = sampling.top_p
    if sampling.top_k is not None:
        payload["top_k"] = sampling.top_k
    if sampling.repeat_penalty is not None:
        # llama.cpp's name; vLLM, SGLang and most others call it `repetition_penalty` (same meaning).
        payload["repeat_penalty" if llamacpp else "repetition_penalty"] = sampling.repeat_penalty
    for key in ("seed", "presence_penalty", "frequency_penalty"):
        value = getattr(sampling, key)
        if value is not None:
            payload[key] = value
    return payload


def decode_chunk(chunk: dict[str, Any], *, prefill: bool = False) -> list[EngineChunk]:
    """One parsed `data:` object -> the chunks it carries, in order. `prefill`: also read what the prompt's
    prefill told (the caller asks only until it has been told once). Usage on a chunk that still carries
    output (vLLM's continuous usage stats) is left out: only the final count matters, and the prompt's
    part of it is read as the prefill."""
    out: list[EngineChunk] = []
    if prefill:
        told = _prefill(chunk)
        if told is not None:
            out.append(told)
    choices = chunk.get("choices") or ()
    mid_stream = False
    for choice in choices:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if reasoning:
            out.append(ReasoningChunk(reasoning))
        content = delta.get("content")
        if content:
            out.append(TextChunk(content))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            out.append(
                ToolCallChunk(
                    call.get("index", 0), call.get("id"), function.get("name"), function.get("arguments") or ""
                )
            )
        reason = choice.get("finish_reason")
        if reason:
            out.append(FinishChunk(_FINISH.get(reason, "stop")))
        else:
            mid_stream = True
    usage = chunk.get("usage")
    if usage and not mid_stream:
        details = usage.get("prompt_tokens_details") or {}
        out.append(
            UsageChunk(
                usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0, details.get("cached_tokens") or 0
            )
        )
    return out


def _prefill(chunk: dict[str, Any]) -> PrefillChunk | None:
    """The prompt's cached part and size as a stream tells them before its output: llama.cpp's
    `prompt_progress` (total, cache) while it prefills, else its `timings` (`prompt_n` is the final
    uncached part only once a token was predicted); vLLM's and SGLang's usage on every chunk."""
    progress = chunk.get("prompt_progress")
    if isinstance(progress, dict) and isinstance(progress.get("total"), int) and isinstance(progress.get("cache"), int):
        return PrefillChunk(progress["cache"], progress["total"])
    timings = chunk.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        cached, uncached = timings["cache_n"], timings.get("prompt_n")
        done = isinstance(uncached, int) and bool(timings.get("predicted_n"))
        return PrefillChunk(cached, cached + uncached if done else None)
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        details = usage.get("prompt_tokens_details") or {}
        return PrefillChunk(details.get("cached_tokens") or 0, usage["prompt_tokens"])
    return None


# Finish reasons that mean the model sampled its end-of-generation token (rolecall sends no `stop`
# strings: it matches stop sequences itself).
_ENDED_ON_EOG = frozenset({"stop", "tool_calls"})


class ReplyUsage:
    """Usage as output tokens of the reply. llama.cpp counts the end-of-generation token in
    `completion_tokens`; it is never output, and counting it made a reply that ended naturally on its
    last allowed token read `output_tokens == max_tokens` with `stop_reason: end_turn`. Feed every decoded
    chunk through `adjust`, in order (the usage chunk follows the finish); `counts_end_token` is False for
    servers not known to count it, whose usage passes unchanged."""

    def __init__(self, counts_end_token: bool) -> None:
        self._counts_end_token = counts_end_token
        self._ended_on_eog = False

    def adjust(self, chunk: EngineChunk) -> EngineChunk:
        if not self._counts_end_token:
            return chunk
        if isinstance(chunk, FinishChunk):
            self._ended_on_eog = chunk.reason in _ENDED_ON_EOG
        elif isinstance(chunk, UsageChunk) and self._ended_on_eog and chunk.completion_tokens > 0:
            return UsageChunk(chunk.prompt_tokens, chunk.completion_tokens - 1, chunk.cached_tokens)
        return chunk
