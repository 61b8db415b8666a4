"""The OpenAI side's tools: `tools` / `tool_choice` -> what the engine is offered, `response_format` ->
the schema the answer is decoded under, and tool-message pairing (shared by both OpenAI-side doors)."""

from __future__ import annotations

import json
from typing import Any

from rolecall.core.conversation import ToolMode, ToolSpec
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.openai.requests import ChatCompletionRequest, ChatMessage, NamedToolChoice

# `json_object` asks only for a JSON object; this schema is the grammar for exactly that.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def offered_tools(request: ChatCompletionRequest) -> tuple[tuple[ToolSpec, ...], ToolMode, bool]:
    """The tools the model may call, the tool mode, and whether several calls may come at once."""
    specs = [
        ToolSpec(tool.function.name, tool.function.description or "", tool.function.parameters or {"type": "object"})
        for tool in request.tools or ()
    ]
    choice = request.tool_choice
    if choice is None or choice == "auto":
        mode: ToolMode = "auto" if specs else "none"
    elif choice == "none":
        mode = "none"
    else:
        name = choice.function.name if isinstance(choice, NamedToolChoice) else None
        if not specs:
            wanted = f"function `{name}`" if name else "`required`"
            raise InvalidRequest(f"tool_choice: {wanted} requires at least one tool in `tools`")
        mode = "required"
        if name is not None:
            specs = [spec for spec in specs if spec.name == name]
            if not specs:
                raise InvalidRequest(f"tool_choice.function.name: tool '{name}' is not defined in tools")
    parallel = request.parallel_tool_calls is not False
    return tuple(specs), mode, parallel


def answer_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema `response_format` asks the answer to match, or None for free text."""
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return ANY_OBJECT
    return response_format.json_schema.schema_ or ANY_OBJECT


def canonical_arguments(arguments: str, where: str) -> str:
    """A history tool call's arguments in the form the Anthropic door writes its `input` (same key order,
    same separators), so one conversation renders to the same prompt through every door."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        raise InvalidRequest(f"{where}: the arguments must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: the arguments must be a JSON object")
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def check_tool_pairing(messages: list[ChatMessage]) -> None:
    """Every tool call of an assistant message is answered by a `tool` message before the next user or
    assistant message, and every `tool` message answers a call of the assistant message before it.
    System and role-play messages in between do not break the pairing (they are not turns)."""
    pending: dict[str, int] = {}  # call id -> index of the assistant message that made it
    offered: set[str] = set()
    seen: set[str] = set()
    for i, message in enumerate(messages):
        if message.role == "tool":
            call_id = message.tool_call_id
            if not call_id:
                raise InvalidRequest(f"messages.{i}.tool_call_id: Field required")
            if call_id not in offered:
                raise InvalidRequest(
                    f"messages.{i}.tool_call_id: `{call_id}` does not answer a tool call of the previous "
                    "assistant message. Each `tool` message must answer one of its `tool_calls` by id."
                )
            pending.pop(call_id, None)
        elif message.role in ("user", "assistant"):
            _raise_unanswered(pending)
            offered = set()
            for k, call in enumerate(message.tool_calls or ()) if message.role == "assistant" else ():
                if call.id in seen:
                    raise InvalidRequest(f"messages.{i}.tool_calls.{k}.id: tool call ids must be unique")
                seen.add(call.id)
                offered.add(call.id)
                pending[call.id] = i
    _raise_unanswered(pending)


def _raise_unanswered(pending: dict[str, int]) -> None:
    if pending:
        ids = list(pending)
        raise InvalidRequest(
            f"messages.{pending[ids[0]]}: `tool_calls` ids were found without `tool` messages answering them: "
            f"{', '.join(ids)}. Each tool call must be answered by a `tool` message with its `tool_call_id` "
            "before the next user or assistant message."
        )
