"""Thinking blocks round-trip: what rolecall signs, it accepts back as reasoning; what was altered, it refuses."""

from __future__ import annotations

import httpx

from rolecall.core.chunks import FinishChunk, ReasoningChunk, TextChunk
from rolecall.engines.fake import ScriptedEngine

QUESTION = {"role": "user", "content": "Why is the sky blue?"}


def ask(url: str, messages: list[dict]) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json={"model": "MiniMax-M2.7", "max_tokens": 64, "messages": messages})


def test_signed_thinking_round_trips_as_reasoning(scripted: ScriptedEngine, scripted_url: str) -> None:
    scripted.enqueue([ReasoningChunk("Rayleigh scattering."), TextChunk("Scattering."), FinishChunk("stop")])
    first = ask(scripted_url, [QUESTION]).json()
    thinking, text = first["content"]
    assert thinking["type"] == "thinking" and len(thinking["signature"]) == 64

    follow_up = [QUESTION, {"role": "assistant", "content": first["content"]}, {"role": "user", "content": "More?"}]
    assert ask(scripted_url, follow_up).status_code == 200
    replayed = scripted.requests[-1].turns[-2]
    assert (
        replayed.role == "assistant" and replayed.reasoning == "Rayleigh scattering." and replayed.text == text["text"]
    )

    tampered = dict(thinking, thinking="Something I never thought.")
    refused = ask(scripted_url, [QUESTION, {"role": "assistant", "content": [tampered, text]}, follow_up[-1]])
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "messages.1.content.0: Invalid `signature` in `thinking` block (2013)"
