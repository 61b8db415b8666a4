"""OpenAPI: the routes read raw bodies (to control validation and error wording), so their request
schemas are attached here from the protocol models."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from rolecall.protocol.anthropic.batches import CreateBatchRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.protocol.openai.requests import ChatCompletionRequest

_BODIES: dict[str, type[BaseModel]] = {
    "/v1/messages": MessagesRequest,
    "/v1/messages/count_tokens": CountTokensRequest,
    "/v1/messages/batches": CreateBatchRequest,
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/text/chatcompletion_v2": ChatCompletionRequest,
    "/v1/render": CountTokensRequest,  # the anthropic door's body (the default door)
}
_CARD_BODY = {
    "required": True,
    "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"card": {"type": "string", "format": "binary"}, "user": {"type": "string"}},
                "required": ["card"],
            }
        },
    },
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            mode: JsonSchemaMode = "validation"
            refs, definitions = models_json_schema(
                [(model, mode) for model in _BODIES.values()], ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
            for prefix in ("", "/anthropic"):
                for path, model in _BODIES.items():
                    operation = schema["paths"].get(prefix + path, {}).get("post")
                    if operation is not None:
                        operation["requestBody"] = {
                            "required": True,
                            "content": {"application/json": {"schema": refs[(model, mode)]}},
                        }
            card_import = schema["paths"].get("/v1/characters/import", {}).get("post")
            if card_import is not None:
                card_import["requestBody"] = _CARD_BODY
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
