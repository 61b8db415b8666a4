"""Reasoning an engine left inline as `<think>…</think>`, separated from the answer.

The per-model `reasoning` setting says where a model's reasoning arrives:

- `field`: in the engine's `reasoning_content`/`reasoning` field (vLLM/SGLang reasoning parsers,
  llama.cpp `--reasoning-format`); the text is left alone.
- `auto`: the field, or inline when the answer opens with `<think>`.
- `tags`: inline, and the chat template already opened `<think>` in the prompt (DeepSeek-R1 style):
  everything up to `</think>` is reasoning, even without an opening tag.
- `none`: the model does not reason; anything in the reasoning field is dropped.

`ThinkTagSplitter` scans text; `ThinkTags` and `DropReasoning` are the engine-output stages for `auto`/`tags`
and `none`.
"""

from __future__ import annotations

from rolecall.core.chunks import EngineChunk, ReasoningChunk, TextChunk
from rolecall.parsing.markers import PartialMarkers

OPEN, CLOSE = "<think>", "</think>"
_PARTIAL_CLOSE = PartialMarkers((CLOSE,))


class ThinkTagSplitter:
    """Feed answer text as it arrives; get back (reasoning, answer) that may be shown now.

    Reasoning only ever comes first, so within one feed the reasoning part precedes the answer part."""

    def __init__(self, opened_in_prompt: bool = False) -> None:
        self._tags_opened_in_prompt = opened_in_prompt  # the `tags` format: reasoning until </think>
        # "opening": not yet known whether the answer starts with <think>; then "reasoning" or "answer".
        self._state = "opening"
        self._held = ""

    @property
    def answering(self) -> bool:
        """The reasoning (if any) is over: everything from here on is answer."""
        return self._state == "answer"

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "answer":
            return "", text
        if self._state == "reasoning" and not self._held and "<" not in text:
            return text, ""  # no end tag can start here (the common reasoning token)
        self._held += text
        if self._state == "opening" and not self._leave_opening():
            return "", ""
        if self._state == "reasoning":
            end = self._held.find(CLOSE)
            if end < 0:
                keep = len(self._held) - _PARTIAL_CLOSE.length(self._held)
                thought, self._held = self._held[:keep], self._held[keep:]
                return thought, ""
            thought, answer = self._held[:end], self._held[end + len(CLOSE) :]
            self._held, self._state = "", "answer"
            return thought, answer
        answer, self._held = self._held, ""
        return "", answer

    def flush(self) -> tuple[str, str]:
        """What is still held when the stream ends: an unclosed block is reasoning, a partial tag is answer."""
        held, self._held = self._held, ""
        in_reasoning = self._state == "reasoning" or (self._state == "opening" and self._tags_opened_in_prompt)
        return (held, "") if in_reasoning else ("", held)

    def _leave_opening(self) -> bool:
        """Decide how the output starts; False while the held text may still be an opening tag."""
        start = self._held.lstrip()
        if start.startswith(OPEN):
            self._held, self._state = start[len(OPEN) :], "reasoning"
        elif OPEN.startswith(start):
            return False
        else:
            self._state = "reasoning" if self._tags_opened_in_prompt else "answer"
        return True


class ThinkTags:
    """The engine-output stage for inline `<think>` blocks (a `ChunkParser` of engine chunks): answer text in,
    reasoning and answer text out; other chunks pass. Once the answer has begun, text passes as it came."""

    def __init__(self, opened_in_prompt: bool = False) -> None:
        self._splitter = ThinkTagSplitter(opened_in_prompt)
        self._answering = False  # the splitter's verdict, kept here: read once per streamed token

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        if not isinstance(chunk, TextChunk):
            return [chunk]
        if self._answering:
            return [chunk] if chunk.text else []
        reasoning, answer = self._splitter.feed(chunk.text)
        self._answering = self._splitter.answering
        return _split(reasoning, answer, chunk)

    def flush(self) -> list[EngineChunk]:
        return _split(*self._splitter.flush(), None)


class DropReasoning:
    """The engine-output stage for `reasoning = "none"`: reasoning an engine sends anyway is dropped."""

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        return [] if isinstance(chunk, ReasoningChunk) else [chunk]

    def flush(self) -> list[EngineChunk]:
        return []


def _split(reasoning: str, answer: str, fed: TextChunk | None) -> list[EngineChunk]:
    """Reasoning first, then answer; the chunk that was fed goes on unchanged when it was all answer."""
    out: list[EngineChunk] = [ReasoningChunk(reasoning)] if reasoning else []
    if answer:
        out.append(fed if fed is not None and fed.text == answer else TextChunk(answer))
    return out
