"""Chat-completion chunk sequences in vLLM's streaming shape (open-models.md §5): what a MiniMax-M2
deployment with `--reasoning-parser minimax_m2 --tool-call-parser minimax_m2` sends, including the
awkward parts a tiny real model never produces."""

from __future__ import annotations

from typing import Any

MODEL = "MiniMaxAI/MiniMax-M2.7"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-9f2c",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": MODEL,
        "choices": [choice],
        **extra,
    }


def usage_only(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    """The final chunk of `stream_options.include_usage`: no choices, just usage."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-9f2c",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": MODEL,
        "choices": [],
        "usage": usage,
    }


def text_reply(text: str, prompt: int = 120) -> list[dict[str, Any]]:
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({}, "stop", stop_reason=None),
        usage_only(prompt, len(pieces)),
    ]


def reasoning_then_text(field: str = "reasoning", cached: int = 50) -> list[dict[str, Any]]:
    """Newer vLLM streams `reasoning`; older vLLM, SGLang and llama.cpp `reasoning_content`."""
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({field: "The user"}),
        chunk({field: " greets me."}),
        chunk({"content": "\n\nHello"}),
        chunk({"content": "! How can I help?"}),
        chunk({}, "stop", stop_reason=None),
        usage_only(377, 9, cached=cached),
    ]


def split_tool_call() -> list[dict[str, Any]]:
    """A tool call whose argument fragments split a key, a value and a \\u escape mid-token."""
    first = {
        "index": 0,
        "id": "call_4a1f0c2b9e8d7c6b5a4f3e2d",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    fragments = ['{"loc', 'ation": "Par', 'is", "unit": "\\u00', 'b0C", "days"', ": 2}"]
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning": "Need the weather tool."}),
        chunk({"content": "Let me check."}),
        chunk({"tool_calls": [first]}),
        *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in fragments),
        chunk({}, "tool_calls", stop_reason=None),
        usage_only(377, 65, cached=0),
    ]


def two_calls_at_index_zero() -> list[dict[str, Any]]:
    """Some servers send every call at index 0: a new id starts a new call."""
    calls = []
    for n, city in enumerate(("Paris", "Oslo")):
        calls.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": f"call_{n}",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            )
        )
        calls.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": f'{{"location": "{city}"}}'}}]}))
    return [chunk({"role": "assistant", "content": ""}), *calls, chunk({}, "tool_calls"), usage_only(200, 30)]


def broken_off() -> list[dict[str, Any]]:
    """Some text, then the server dies (served with `drop=True`)."""
    return [chunk({"role": "assistant", "content": ""}), chunk({"content": "The answer"}), chunk({"content": " is"})]


def error_chunk() -> list[dict[str, Any]]:
    """vLLM reports a failure after the 200 as a `data: {"error": ...}` chunk."""
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Partial"}),
        {"error": {"message": "EngineCore encountered an issue", "type": "InternalServerError", "code": 500}},
    ]
