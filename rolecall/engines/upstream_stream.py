"""Reading an OpenAI-compatible chat stream, trusting nothing: an answer that is not an event stream, a
`data:` line that is not a JSON object, or a stream that stops before saying it is finished is a
`ReplicaFault` that says what the upstream did (502 before the first byte, an `error` event after it),
never a short answer that looks complete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson

from rolecall.core.chunks import EngineChunk, FinishChunk, PrefillChunk
from rolecall.core.errors import UpstreamError
from rolecall.engines.openai_wire import decode_chunk
from rolecall.engines.upstream_errors import ReplicaFault, error_message

_SNIPPET = 200  # characters of an unusable answer quoted in the error


async def chat_chunks(response: httpx.Response) -> AsyncIterator[EngineChunk]:
    """The engine chunks of a 200 answer to a streamed `/v1/chat/completions`."""
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise await _not_a_stream(response, content_type)
    events = 0
    finished = False
    prefill_told = False  # llama.cpp's cached-prompt count is read from the first chunk that has it
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, `: keep-alive` comments, `event:` / `id:` fields
        data = line[5:].strip()
        if data == "[DONE]":
            if events == 0:
                raise ReplicaFault("the upstream ended its stream ([DONE]) without sending any chunk")
            return
        events += 1
        for chunk in _decode(data, prefill=not prefill_told):
            finished = finished or isinstance(chunk, FinishChunk)
            prefill_told = prefill_told or isinstance(chunk, PrefillChunk)
            yield chunk
    if not finished:
        raise ReplicaFault(
            f"the upstream's stream ended after {events} chunk(s) without a finish_reason or [DONE]: "
            "the generation was cut off"
        )


def _decode(data: str, *, prefill: bool) -> list[EngineChunk]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReplicaFault(f"the upstream sent a `data:` line that is not JSON: {data[:_SNIPPET]!r}") from None
    if not isinstance(chunk, dict):
        raise ReplicaFault(f"the upstream sent a `data:` line that is not a JSON object: {data[:_SNIPPET]!r}")
    if "error" in chunk:
        raise UpstreamError(f"the upstream reported an error mid-stream: {error_message(chunk)}")
    try:
        return decode_chunk(chunk, prefill=prefill)
    except (AttributeError, TypeError, ValueError, KeyError):
        snippet = data[:_SNIPPET]
        raise ReplicaFault(f"the upstream sent a chunk that is not a chat completion chunk: {snippet!r}") from None


async def _not_a_stream(response: httpx.Response, content_type: str) -> ReplicaFault:
    """A 200 that is not an event stream: quote its error if it has one, else the start of its body."""
    raw = b""
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) > 4096:
            break
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and "error" in body:
        said = error_message(body)
    else:
        said = raw[:_SNIPPET].decode("utf-8", "replace")
    kind = content_type or "no content-type"
    return ReplicaFault(f"the upstream answered 200 with {kind} instead of an event stream: {said!r}")
