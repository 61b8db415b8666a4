"""Reasoning an engine left inline as `<think>…</think>`, separated from the answer.

The per-model `reasoning` setting says where a model's reasoning arrives:

- `field`: in the engine's `reasoning_content`/`reasoning` field (vLLM/SGLang reasoning parsers,
  llama.cpp `--reasoning-format`); the text is left alone.
- `auto`: the field, or inline when the answer opens with `<think>`.
- `tags`: inline, and the chat template already opened `<think>` in the prompt (DeepSeek-R1 style):
  everything up to `</think>` is reasoning, even without an opening tag.
- `none`: the model does not reason; anything in the reasoning field is dropped.
"""

from __future__ import annotations

from rolecall.parsing.markers import partial_marker_length

OPEN, CLOSE = "<think>", "</think>"


class ThinkTagSplitter:
    """Feed answer text as it arrives; get back (reasoning, answer) that may be shown now.

    Reasoning only ever comes first, so within one feed the reasoning part precedes the answer part."""

    def __init__(self, opened_in_prompt: bool = False) -> None:
        self._tags_opened_in_prompt = opened_in_prompt  # the `tags` format: reasoning until </think>
        # "opening": not yet known whether the answer starts with <think>; then "reasoning" or "answer".
        self._state = "opening"
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "answer":
            return "", text
        self._held += text
        if self._state == "opening" and not self._leave_opening():
            return "", ""
        if self._state == "reasoning":
            end = self._held.find(CLOSE)
            if end < 0:
                keep = len(self._held) - partial_marker_length(self._held, (CLOSE,))
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
