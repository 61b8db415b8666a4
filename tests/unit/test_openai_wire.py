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
    # The prompt is its cached part and what was prefilled: 202 + 1.
    assert decode_chunk(FIRST, prefill=True) == [PrefillChunk(202, 203), TextChunk("The")]
    assert decode_chunk(FIRST) == [TextChunk("The")]
    assert decode_chunk({"choices": [], "timings": {"prompt_n": 3}}, prefill=True) == []


def test_the_prompt_size_is_read_from_the_stream() -> None:
    """llama.cpp's prefill progress (total and cache; its timings are partial then), vLLM's continuous usage."""
    progress = {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}],
        "prompt_progress": {"total": 39, "cache": 38, "processed": 38, "time_ms": 0},
        "timings": {"cache_n": 38, "prompt_n": 0, "predicted_n": 0},
    }
    assert decode_chunk(progress, prefill=True) == [PrefillChunk(38, 39)]
    prefilling = {"choices": [], "timings": {"cache_n": 38, "prompt_n": 0, "predicted_n": 0}}
    assert decode_chunk(prefilling, prefill=True) == [PrefillChunk(38, None)]
    usage = {"prompt_tokens": 377, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 256}}
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    # Mid-stream usage tells the prompt; only the final usage (no output left) is the reply's count.
    assert decode_chunk({**first, "usage": usage}, prefill=True) == [PrefillChunk(256, 377)]
    assert decode_chunk({**first, "usage": usage}) == []


def test_vllm_and_sglang_are_asked_for_usage_on_every_chunk() -> None:
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=4)
    continuous = chat_payload(request, "m", continuous_usage=True)["stream_options"]
    assert continuous == {"include_usage": True, "continuous_usage_stats": True}
    assert chat_payload(request, "m")["stream_options"] == {"include_usage": True}


def test_llamacpp_is_asked_for_timings_and_others_are_not() -> None:
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=4)
    llamacpp = chat_payload(request, None, llamacpp=True)
    assert (llamacpp["timings_per_token"], llamacpp["return_progress"]) == (True, True)
    assert "timings_per_token" not in chat_payload(request, "m")
