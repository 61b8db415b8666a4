"""What the model saw: a shaped request's neutral turns, and where the engine shows it, the prompt text."""

from __future__ import annotations

from typing import Any

from rolecall.core.conversation import GenerationRequest, Turn
from rolecall.engines.registry import ServedModel


async def rendering(
    door: str, requested_model: str, model: ServedModel, generation: GenerationRequest, tokens: int
) -> dict:
    """The body of `POST /v1/render`: turns after shaping, the template's prompt text (or null) and its tokens.

    `tokens` is the engine's own count of this prompt, the number `count_tokens` answers and generation bills."""
    prompt = await model.engine.render_prompt(generation)
    body: dict[str, Any] = {
        "door": door,
        "model": requested_model,
        "served_by": model.id,
        "turns": [turn_object(turn) for turn in generation.turns],
        "prompt": prompt,
        "input_tokens": tokens,
    }
    if generation.tools and generation.tool_syntax is None:
        body["tools"] = [tool.name for tool in generation.tools]
    return body


def turn_object(turn: Turn) -> dict[str, Any]:
    """One neutral turn as JSON, with only the fields it uses."""
    item: dict[str, Any] = {"role": turn.role, "content": turn.text}
    if turn.reasoning:
        item["reasoning"] = turn.reasoning
    if turn.tool_calls:
        item["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
    if turn.tool_call_id is not None:
        item["tool_call_id"] = turn.tool_call_id
    if turn.images:
        item["images"] = len(turn.images)
    return item
