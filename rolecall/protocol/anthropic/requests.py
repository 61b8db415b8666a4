"""Request bodies: `POST /v1/messages` and `POST /v1/messages/count_tokens`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, Tag

from rolecall.protocol.anthropic.blocks import CacheControl, Content, SystemContent

MAX_OUTPUT_TOKENS = 204_800

Role = Literal[
    "user",
    "assistant",
    "user_system",
    "group",
    "sample_message_user",
    "sample_message_ai",
    "system",
    "ctx",
    "msg",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Message(_Wire):
    role: Role
    content: Content
    # MiniMax's OpenAI-side speaker name; used by the role-play rendering.
    name: str | None = None


class Tool(_Wire):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    # Versioned server tools (`web_search_20250305`, ...) carry a `type`; custom tools may omit it.
    type: str | None = None
    cache_control: CacheControl | None = None


class ToolChoiceAuto(_Wire):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Wire):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Wire):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Wire):
    type: Literal["none"]


ToolChoice = Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")]


class ThinkingEnabled(_Wire):
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Strict(), Field(ge=1024)]
    display: str | None = None


class ThinkingDisabled(_Wire):
    type: Literal["disabled"]


class ThinkingAdaptive(_Wire):
    type: Literal["adaptive"]
    display: str | None = None


Thinking = Annotated[
    Annotated[ThinkingEnabled, Tag("enabled")]
    | Annotated[ThinkingDisabled, Tag("disabled")]
    | Annotated[ThinkingAdaptive, Tag("adaptive")],
    Field(discriminator="type"),
]


class Metadata(_Wire):
    user_id: str | None = None


class JsonOutputFormat(_Wire):
    """Structured output: the answer's text is JSON that satisfies `schema`."""

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")  # `schema` would shadow a BaseModel attribute


class OutputConfig(_Wire):
    effort: str | None = None  # reasoning effort; no engine behind rolecall takes one yet, so it is accepted and unused
    format: JsonOutputFormat | None = None


class _Conversation(_Wire):
    """What both endpoints share: the prompt."""

    model: Annotated[str, Field(min_length=1)]
    messages: list[Message]
    system: SystemContent | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: Metadata | None = None
    cache_control: CacheControl | None = None  # automatic caching: a hint, engines cache prefixes anyway


class MessagesRequest(_Conversation):
    """`POST /v1/messages`. Unknown top-level fields are ignored (Claude Code keeps adding some)."""

    max_tokens: Annotated[int, Strict(), Field(ge=1, le=MAX_OUTPUT_TOKENS)]
    stream: Annotated[bool, Strict()] | None = None
    temperature: Annotated[float, Strict(), Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Strict(), Field(gt=0, le=1)] | None = None
    # 0 is "no top-k limit" (Anthropic accepts it; SillyTavern's Claude source always sends it).
    top_k: Annotated[int, Strict(), Field(ge=0)] | None = None
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = None
    output_config: OutputConfig | None = None
    output_format: JsonOutputFormat | None = None  # the structured-outputs beta's name for output_config.format


class CountTokensRequest(_Conversation):
    """`POST /v1/messages/count_tokens`: the Messages body; generation fields are ignored."""
