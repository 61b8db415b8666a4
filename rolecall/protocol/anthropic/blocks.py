"""Content blocks a client may send inside `messages` and `system`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag


class _Wire(BaseModel):
    # Unknown keys are ignored: clients add fields faster than servers learn them.
    model_config = ConfigDict(extra="ignore", frozen=True)


class CacheControl(_Wire):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(_Wire):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None


class ImageBlock(_Wire):
    type: Literal["image"]
    source: dict[str, Any]
    cache_control: CacheControl | None = None


class DocumentBlock(_Wire):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None


class SearchResultBlock(_Wire):
    type: Literal["search_result"]
    source: str
    title: str
    content: list[TextBlock]
    cache_control: CacheControl | None = None


class ToolUseBlock(_Wire):
    type: Literal["tool_use"]
    id: str
    name: str
    # A dict keeps the client's key order, which the engine's prefix cache depends on.
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(_Wire):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[dict[str, Any]] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Wire):
    type: Literal["redacted_thinking"]
    data: str


class HistoryOnlyBlock(BaseModel):
    """Server-tool blocks and the like: accepted in history, never shown to the model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


_HISTORY_ONLY = {"server_tool_use", "container_upload", "mid_conv_system"}


def _block_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    if kind in _HISTORY_ONLY or (kind.endswith("_tool_result") and kind != "tool_result"):
        return "history_only"
    return kind


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[SearchResultBlock, Tag("search_result")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[HistoryOnlyBlock, Tag("history_only")],
    Discriminator(_block_tag),
]


def _text_shorthand(value: Any) -> Any:
    """A string is shorthand for one text block; `""` means no content at all."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}] if value else []
    return value


Content = Annotated[list[ContentBlock], BeforeValidator(_text_shorthand)]
SystemContent = Annotated[list[TextBlock], BeforeValidator(_text_shorthand), Field()]
