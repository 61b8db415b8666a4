"""`POST /v1/chat/completions` (and MiniMax's `/v1/text/chatcompletion_v2`): the request body.

Lenient where clients differ (unknown fields ignored, any Unicode `name`), strict where a wrong value would
silently change the answer (ranges, roles, tool_choice shapes). Cross-field rules (which role may have null
content, tool pairing) live in shaping/openai.py, which knows the message order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, Tag

MAX_OUTPUT_TOKENS = 204_800
MAX_STOPS = 16
MAX_CHOICES = 8

Role = Literal[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "user_system",
    "group",
    "sample_message_user",
    "sample_message_ai",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageURL(_Wire):
    url: Annotated[str, Field(min_length=1)]
    detail: str | None = None


class ImagePart(_Wire):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")] | Annotated[ImagePart, Tag("image_url")], Field(discriminator="type")
]


class FunctionCall(_Wire):
    name: Annotated[str, Field(min_length=1)]
    arguments: str  # JSON text, as the model wrote it


class ToolCall(_Wire):
    id: Annotated[str, Field(min_length=1)]
    type: Literal["function"] = "function"
    function: FunctionCall


class ReasoningDetail(_Wire):
    """MiniMax's `reasoning_details` item; only its text matters on the way back in."""

    type: str | None = None
    text: str | None = None


class ChatMessage(_Wire):
    role: Role
    content: str | list[ContentPart] | None = None
    # The speaker (any Unicode: `诸葛亮` stays `诸葛亮`); a named system message names the AI character.
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    # The reasoning of an earlier assistant turn, in either form clients send it back.
    reasoning_content: str | None = None
    reasoning_details: list[ReasoningDetail] | None = None


class FunctionDefinition(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.:-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Wire):
    name: Annotated[str, Field(min_length=1)]


class NamedToolChoice(_Wire):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    # `schema` shadows a BaseModel attribute, hence the alias.
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormatText(_Wire):
    type: Literal["text"]


class ResponseFormatJsonObject(_Wire):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(_Wire):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    Annotated[ResponseFormatText, Tag("text")]
    | Annotated[ResponseFormatJsonObject, Tag("json_object")]
    | Annotated[ResponseFormatJsonSchema, Tag("json_schema")],
    Field(discriminator="type"),
]


class StreamOptions(_Wire):
    include_usage: bool | None = None


class ChatCompletionRequest(_Wire):
    """The chat-completions body. `user`, `metadata`, `service_tier`, `mask_sensitive_info`, `logit_bias`
    and any other unknown field are accepted and ignored."""

    model: Annotated[str, Field(min_length=1)]
    messages: list[ChatMessage]
    max_tokens: Annotated[int, Strict(), Field(ge=1, le=MAX_OUTPUT_TOKENS)] | None = None
    max_completion_tokens: Annotated[int, Strict(), Field(ge=1, le=MAX_OUTPUT_TOKENS)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Strict(), Field(ge=0)] | None = None  # 0 = off, as llama.cpp reads it
    seed: Annotated[int, Strict()] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stop: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOPS)]
        | None
    ) = None
    n: Annotated[int, Strict(), Field(ge=1, le=MAX_CHOICES)] | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: Annotated[bool, Strict()] | None = None
    stream_options: StreamOptions | None = None
    reasoning_split: bool | None = None

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def output_cap(self) -> int | None:
        """The output cap the client asked for (`max_completion_tokens` is OpenAI's newer name)."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)
