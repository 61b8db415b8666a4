"""Tools and tool_choice -> what the engine is offered, and tools for models whose template has none.

A chat template that ignores `tools` (SmolLM2's, many small models') would silently drop them, and
the engine could not force a call. For such engines rolecall prompts for tools itself, in the
widely trained hermes convention: the tool signatures go into the system turn, earlier calls and
results are written into the history as `<tool_call>` / `<tool_response>` text, and the model's
`<tool_call>` markup is parsed back. A forced choice (`any`, `tool`) is made certain with
constrained decoding: the answer must match a JSON schema of `{"name", "arguments"}` objects.
"""

from __future__ import annotations

import json
from typing import Any

from rolecall.core.conversation import ToolCall, ToolSpec

_INSTRUCTIONS = (
    "# Tools\n\n"
    "You may call one or more of the tools below to help with the request. Their signatures, one JSON object each:\n"
    "<tools>\n{signatures}\n</tools>\n\n"
    "To call a tool, answer with one <tool_call></tool_call> block per call, holding a JSON object with the tool's "
    "name and its arguments:\n"
    '<tool_call>\n{{"name": "<tool name>", "arguments": {{<arguments as JSON>}}}}\n</tool_call>'
)


def tool_instructions(tools: tuple[ToolSpec, ...]) -> str:
    """The system-turn section that tells a model without template tool support how to call tools."""
    signatures = "\n".join(
        _compact({"name": tool.name, "description": tool.description, "parameters": tool.parameters}) for tool in tools
    )
    return _INSTRUCTIONS.format(signatures=signatures)


def call_markup(calls: tuple[ToolCall, ...]) -> str:
    """Earlier tool calls written as the `<tool_call>` text the model was asked to produce."""
    return "\n".join(
        f'<tool_call>\n{{"name": {_compact(call.name)}, "arguments": {call.arguments}}}\n</tool_call>' for call in calls
    )


def result_markup(text: str) -> str:
    """A tool result as text in a user turn (templates without tools may reject a `tool` role)."""
    return f"<tool_response>\n{text}\n</tool_response>"


def forced_call_schema(tools: tuple[ToolSpec, ...]) -> dict[str, Any]:
    """A JSON schema that admits exactly one call of one of `tools`: `{"name": ..., "arguments": {...}}`."""
    options = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
