"""The Messages API's `tools` and `tool_choice` -> the tools the engine is offered and the tool mode."""

from __future__ import annotations

from rolecall.core.conversation import ToolMode, ToolSpec
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest, ToolChoiceTool


def offered_tools(request: MessagesRequest | CountTokensRequest) -> tuple[tuple[ToolSpec, ...], ToolMode, bool]:
    """The tools the model may call, the tool mode, and whether several calls may come at once."""
    # Versioned server tools (web search, code execution, ...) are accepted but not offered: rolecall runs none.
    specs = [
        ToolSpec(tool.name, tool.description or "", tool.input_schema or {"type": "object"})
        for tool in request.tools or ()
        if tool.type in (None, "custom")
    ]
    choice = request.tool_choice
    if choice is None or choice.type == "auto":
        mode: ToolMode = "auto" if specs else "none"
    elif choice.type == "none":
        mode = "none"
    else:
        if not specs:
            raise InvalidRequest(f"tool_choice.type: `{choice.type}` requires at least one tool in `tools`")
        mode = "required"
        if isinstance(choice, ToolChoiceTool):
            specs = [spec for spec in specs if spec.name == choice.name]
            if not specs:
                raise InvalidRequest(f"tool_choice.name: tool '{choice.name}' is not defined in tools")
    parallel = not getattr(choice, "disable_parallel_tool_use", None)
    return tuple(specs), mode, parallel
