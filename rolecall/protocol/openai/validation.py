"""Pydantic failures in the `<dotted.path>: <message>` wording the Anthropic door uses."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.openai.requests import ChatCompletionRequest

# Errors that only say "this branch of a union has another type": the least telling of several.
_TYPE_MISMATCH = ("_type", "literal_error", "model_attributes_type")


def parse_request(body: bytes) -> ChatCompletionRequest:
    """Parse and validate a chat-completions body in one pass, or raise `InvalidRequest`."""
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """The most telling error. A value that fails every branch of a union (`content` as a string or a
    list of parts) reports one error per branch; the deepest one that is not a bare type mismatch says
    what is really wrong (`messages.0.content.1.type: …` rather than `messages.0.content: not a string`)."""
    errors = exc.errors(include_url=False, include_input=False)
    error = min(errors, key=_rank)
    kind = error["type"]
    if kind == "json_invalid":
        return f"Request body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if kind in ("model_type", "model_attributes_type") and not error["loc"]:
        return "Request body must be a JSON object"
    # Wrapper segments (`list[...]`, `function-after[...]`, union branch names) are pydantic internals.
    path = [str(p) for p in error["loc"] if not (isinstance(p, str) and _internal(p))]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path.append("type")
        if kind == "union_tag_not_found":
            return f"{'.'.join(path)}: Field required"
        return (
            f"{'.'.join(path)}: Input tag '{error['ctx']['tag']}' does not match any of the expected tags: "
            f"{error['ctx']['expected_tags']}"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(path)}: {message}" if path else message


def _rank(error: Any) -> tuple[int, int]:
    mismatch = any(str(error["type"]).endswith(suffix) for suffix in _TYPE_MISMATCH)
    depth = sum(1 for p in error["loc"] if not (isinstance(p, str) and _internal(p)))
    return (1 if mismatch else 0, -depth)


def _internal(segment: str) -> bool:
    return "[" in segment or "(" in segment or segment in _BRANCHES


_BRANCHES = frozenset({"str", "int", "float", "bool", "list", "dict", "NamedToolChoice", "constrained-str"})
