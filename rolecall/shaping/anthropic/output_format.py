"""Structured output (`output_config.format`, or the beta's `output_format`): the answer is decoded under the
JSON schema, so its text block parses and satisfies it."""

from __future__ import annotations

from typing import Any

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.shaping.traits import EngineTraits


def output_schema(request: MessagesRequest | CountTokensRequest, traits: EngineTraits) -> dict[str, Any] | None:
    """The schema the answer must satisfy, or None; 400 when the engine cannot decode under one."""
    if not isinstance(request, MessagesRequest):
        return None  # count_tokens: the schema constrains decoding, not the prompt
    configured = request.output_config.format if request.output_config is not None else None
    if configured is not None and request.output_format is not None:
        raise InvalidRequest(
            "output_format: give the format once, in output_config.format (output_format is its older beta name)"
        )
    chosen = configured or request.output_format
    if chosen is None:
        return None
    if not traits.json_schema:
        where = "output_config.format" if configured is not None else "output_format"
        raise InvalidRequest(
            f"{where}: structured output is not supported by model {traits.model_name}; remove it, or serve the "
            "model with an engine that decodes under a JSON schema (llama.cpp, vLLM, SGLang)"
        )
    return chosen.schema_
