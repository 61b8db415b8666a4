"""Reading an OpenAI-compatible chat stream, trusting nothing: an answer that is not an event stream, a
`data:` line that is not a JSON object, or a stream that stops before saying it is finished is a
`ReplicaFault` that says what the upstream did (502 before the first byte, an `error` event after it),
never a short answer that looks complete."""

from __future__ import annotations

import orjson

from rolecall.core.chunks import EngineBatch, EngineChunk, FinishChunk, PrefillChunk, TextChunk
from rolecall.core.errors import UpstreamError
from rolecall.engines.openai_wire import ReplyUsage, decode_chunk
from rolecall.engines.upstream_errors import ReplicaFault, error_message
from rolecall.engines.upstream_http import StreamedResponse

_SNIPPET = 200  # characters of an unusable answer quoted in the error


class ChatStreamDecoder:
    """The `data:` payloads of a streamed `/v1/chat/completions` (from `parsing.upstream_sse.UpstreamSSE`) ->
    engine chunks; a `ChunkParser[bytes, EngineChunk]`. `done` once `[DONE]` arrived (what follows it is
    ignored); `flush()` at the end of the body raises if the stream was cut off."""

    def __init__(self) -> None:
        self.done = False
        self._events = 0
        self._finished = False
        self._prefill_told = False  # llama.cpp's cached-prompt count is read from the first chunk that has it

    def feed(self, data: bytes) -> list[EngineChunk]:
        if self.done:
            return []
        if data == b"[DONE]":
            if self._events == 0:
                raise ReplicaFault("the upstream ended its stream ([DONE]) without sending any chunk")
            self.done = True
            return []
        self._events += 1
        chunks = _decode(data, prefill=not self._prefill_told)
        for chunk in chunks:
            kind = type(chunk)
            if kind is FinishChunk:
                self._finished = True
            elif kind is PrefillChunk:
                self._prefill_told = True
        return chunks

    def flush(self) -> list[EngineChunk]:
        if not self.done and not self._finished:
            raise ReplicaFault(
                f"the upstream's stream ended after {self._events} chunk(s) without a finish_reason or [DONE]: "
                "the generation was cut off"
            )
        return []


def decoded(
    payloads: list[bytes], decoder: ChatStreamDecoder, usage: ReplyUsage
) -> tuple[EngineBatch, Exception | None]:
    """The chunks of one read's `data:` payloads, and the failure that stopped them (None: none). The chunks
    decoded ahead of a payload that fails still go out before the failure is raised: what the upstream sent
    before its garbage is the client's."""
    batch: EngineBatch = []
    for payload in payloads:
        try:
            chunks = decoder.feed(payload)
        except Exception as exc:
            return batch, exc
        for chunk in chunks:
            # Only the finish and usage chunks concern `usage`: a token (nearly every chunk) goes as it is.
            batch.append(chunk if type(chunk) is TextChunk else usage.adjust(chunk))
    return batch, None


def _decode(data: bytes, *, prefill: bool) -> list[EngineChunk]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReplicaFault(f"the upstream sent a `data:` line that is not JSON: {_quote(data)!r}") from None
    if not isinstance(chunk, dict):
        raise ReplicaFault(f"the upstream sent a `data:` line that is not a JSON object: {_quote(data)!r}")
    if "error" in chunk:
        raise UpstreamError(f"the upstream reported an error mid-stream: {error_message(chunk)}")
    try:
        return decode_chunk(chunk, prefill=prefill)
    except (AttributeError, TypeError, ValueError, KeyError):
        raise ReplicaFault(f"the upstream sent a chunk that is not a chat completion chunk: {_quote(data)!r}") from None


def _quote(data: bytes) -> str:
    return data[: _SNIPPET * 4].decode("utf-8", "replace")[:_SNIPPET]


async def not_a_stream(response: StreamedResponse, content_type: str) -> ReplicaFault:
    """A 200 that is not an event stream: quote its error if it has one, else the start of its body."""
    raw = await response.read_all(4096)
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
