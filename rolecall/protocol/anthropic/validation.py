"""Turns pydantic failures into the `<dotted.path>: <message>` wording Anthropic uses."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from rolecall.core.errors import InvalidRequest

# The content-block union's internal tag for server-tool blocks; not a type a client can name.
_INTERNAL_TAGS = {"'history_only'"}

Model = TypeVar("Model", bound=BaseModel)


def parse_body(model: type[Model], body: bytes) -> Model:
    """Parse and validate a JSON body in one pass, or raise `InvalidRequest`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """The first error, in the form clients match on."""
    error = exc.errors(include_url=False, include_input=False)[0]
    kind = error["type"]
    if kind == "json_invalid":
        return f"Request body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if kind in ("model_type", "model_attributes_type") and not error["loc"]:
        return "Request body must be a JSON object"
    # Wrapper segments (`function-after[...]`, `list[...]`) are pydantic internals, not paths.
    path = [str(p) for p in error["loc"] if not (isinstance(p, str) and ("[" in p or "(" in p))]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path.append("type")
        if kind == "union_tag_not_found":
            return f"{'.'.join(path)}: Field required"
        tag = error["ctx"]["tag"]
        expected = ", ".join(t for t in error["ctx"]["expected_tags"].split(", ") if t not in _INTERNAL_TAGS)
        return f"{'.'.join(path)}: Input tag '{tag}' does not match any of the expected tags: {expected}"
    return f"{'.'.join(path)}: {error['msg']}" if path else error["msg"]
