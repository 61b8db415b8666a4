"""What the model saw: a door's request shaped as for generation, and where the engine shows it, the prompt text."""

from __future__ import annotations

from typing import Any

from rolecall.core.conversation import Turn
from rolecall.service.prepare import count_prompt
from rolecall.service.runtime import Runtime
from rolecall.shaping.traits import Shaper


async def render(runtime: Runtime, door: str, model_name: str, shape: Shaper) -> dict[str, Any]:
    """The body of `POST /v1/render`: the turns after shaping, the template's prompt text (null where the engine
    does not show it) and its token count, which is what `count_tokens` answers and generation bills.

    Resolution, shaping and counting are `prepare`'s own, so what is shown is what would be served."""
    model, generation, tokens = await count_prompt(runtime, model_name, shape)
    body: dict[str, Any] = {
        "door": door,
        "model": model_name,
        "served_by": model.id,
        "turns": [turn_object(turn) for turn in generation.turns],
        "prompt": await model.engine.render_prompt(generation),
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
