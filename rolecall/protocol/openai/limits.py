"""Request caps for the OpenAI-side doors, as on `/v1/messages`: how many messages and tools (400), how
large one message's text may be (413), and schemas the engine can serialise (no integers past 64 bits)."""

from __future__ import annotations

from typing import Any

import orjson

from rolecall.core.errors import InvalidRequest, RequestTooLarge
from rolecall.protocol.openai.requests import ChatCompletionRequest, ChatMessage, TextPart


def check_caps(request: ChatCompletionRequest, max_messages: int, max_tools: int, max_chars: int) -> None:
    """Raise the error a request over one of the caps gets; the path names the first offender."""
    if len(request.messages) > max_messages:
        raise InvalidRequest(f"messages: at most {max_messages} messages are accepted, got {len(request.messages)}")
    tools = request.tools or []
    if len(tools) > max_tools:
        raise InvalidRequest(f"tools: at most {max_tools} tools are accepted, got {len(tools)}")
    for i, message in enumerate(request.messages):
        size = _chars(message)
        if size > max_chars:
            raise RequestTooLarge(f"messages.{i}.content: {size} characters exceed the maximum of {max_chars}")
    schemas: list[tuple[str, Any]] = [
        (f"tools.{i}.function.parameters", tool.function.parameters) for i, tool in enumerate(tools)
    ]
    if request.response_format is not None and request.response_format.type == "json_schema":
        schemas.append(("response_format.json_schema.schema", request.response_format.json_schema.schema_))
    for path, schema in schemas:
        if schema is not None:
            size = _schema_chars(path, schema)
            if size > max_chars:
                raise RequestTooLarge(f"{path}: {size} characters exceed the maximum of {max_chars}")


def _chars(message: ChatMessage) -> int:
    content = message.content
    if isinstance(content, list):
        size = sum(len(part.text) for part in content if isinstance(part, TextPart))
    else:
        size = len(content or "")
    return size + len(message.reasoning_content or "")


def _schema_chars(path: str, schema: object) -> int:
    try:
        return len(orjson.dumps(schema))
    except orjson.JSONEncodeError:  # integers past 64 bits: engines' JSON libraries refuse them too
        raise InvalidRequest(f"{path}: numbers must fit in 64 bits") from None
