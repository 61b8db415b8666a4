"""Request caps beyond the body size: how many messages and tools, and how large one block may be.
Counts over the cap are 400 `invalid_request_error`; an oversized block is 413 `request_too_large`.
Tool and output schemas must also be serialisable for the engine (no integers past 64 bits), else 400."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from rolecall.core.errors import InvalidRequest, RequestTooLarge
from rolecall.protocol.anthropic.blocks import TextBlock, ThinkingBlock, ToolResultBlock
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest


@dataclass(frozen=True, slots=True)
class RequestCaps:
    max_messages: int
    max_tools: int
    max_block_chars: int


def check_caps(request: MessagesRequest | CountTokensRequest, caps: RequestCaps) -> None:
    """Raise the error a request over one of `caps` gets; the path names the first offender."""
    if len(request.messages) > caps.max_messages:
        raise InvalidRequest(
            f"messages: at most {caps.max_messages} messages are accepted, got {len(request.messages)}"
        )
    tools = request.tools or []
    if len(tools) > caps.max_tools:
        raise InvalidRequest(f"tools: at most {caps.max_tools} tools are accepted, got {len(tools)}")
    for i, block in enumerate(request.system or []):
        _check_size(f"system.{i}.text", len(block.text), caps)
    for i, message in enumerate(request.messages):
        for j, content in enumerate(message.content):
            size = _block_chars(content)
            if size:
                _check_size(f"messages.{i}.content.{j}", size, caps)
    for i, tool in enumerate(tools):
        if tool.input_schema:
            path = f"tools.{i}.input_schema"
            _check_size(path, _schema_chars(path, tool.input_schema), caps)
    if isinstance(request, MessagesRequest):
        for path, schema in _output_schemas(request):
            _check_size(path, _schema_chars(path, schema), caps)


def _output_schemas(request: MessagesRequest) -> list[tuple[str, dict]]:
    found = []
    if request.output_config is not None and request.output_config.format is not None:
        found.append(("output_config.format.schema", request.output_config.format.schema_))
    if request.output_format is not None:
        found.append(("output_format.schema", request.output_format.schema_))
    return found


def _block_chars(block: object) -> int:
    if isinstance(block, TextBlock):
        return len(block.text)
    if isinstance(block, ThinkingBlock):
        return len(block.thinking)
    if isinstance(block, ToolResultBlock) and isinstance(block.content, str):
        return len(block.content)
    if isinstance(block, ToolResultBlock) and block.content:
        texts = (part.get("text") for part in block.content if isinstance(part, dict))
        return sum(len(text) for text in texts if isinstance(text, str))
    return 0


def _schema_chars(path: str, schema: object) -> int:
    try:
        return len(orjson.dumps(schema))
    except orjson.JSONEncodeError:  # integers past 64 bits: engines' JSON libraries refuse them too
        raise InvalidRequest(f"{path}: numbers must fit in 64 bits") from None


def _check_size(path: str, size: int, caps: RequestCaps) -> None:
    if size > caps.max_block_chars:
        raise RequestTooLarge(f"{path}: block of {size} characters exceeds the maximum of {caps.max_block_chars}")
