"""engines/openai_wire: llama.cpp's per-token timings tell the prompt's cached part before the first token."""

from __future__ import annotations

from rolecall.core.chunks import PrefillChunk, TextChunk
from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.engines.openai_wire import chat_payload, decode_chunk

# The first content chunk llama.cpp streams with `timings_per_token` (trimmed).
FIRST = {
    "choices": [{"finish_reason": None, "index": 0, "delta": {"content": "The"}}],
    "timings": {"cache_n": 202, "prompt_n": 1, "predicted_n": 1},
}


def test_the_cached_part_is_read_only_when_asked() -> None:
    assert decode_chunk(FIRST, prefill=True) == [PrefillChunk(202), TextChunk("The")]
    assert decode_chunk(FIRST) == [TextChunk("The")]
    assert decode_chunk({"choices": [], "timings": {"prompt_n": 3}}, prefill=True) == []


def test_llamacpp_is_asked_for_timings_and_others_are_not() -> None:
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=4)
    llamacpp = chat_payload(request, None, llamacpp=True)
    assert (llamacpp["timings_per_token"], llamacpp["return_progress"]) == (True, True)
    assert "timings_per_token" not in chat_payload(request, "m")
