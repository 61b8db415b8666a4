"""Non-text user content: documents and search results become text, images go to vision engines as URLs."""

from __future__ import annotations

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.blocks import DocumentBlock, ImageBlock, SearchResultBlock, ToolResultBlock

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def media_text(block: DocumentBlock | SearchResultBlock, where: str, model: str) -> str:
    """A document or search result as the text the model reads; PDFs and URL documents are refused."""
    if isinstance(block, SearchResultBlock):
        body = "\n".join(part.text for part in block.content)
        return f"{block.title} ({block.source})\n{body}"
    kind = block.source.get("type")
    if kind == "text" and isinstance(block.source.get("data"), str):
        return _titled(block, block.source["data"])
    if kind == "content" and isinstance(block.source.get("content"), (str, list)):
        content = block.source["content"]
        text = (
            content
            if isinstance(content, str)
            else "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
        )
        return _titled(block, text)
    raise InvalidRequest(f"{where}: {block.type} input is not supported by model {model}")


def image_url(block: ImageBlock, where: str, model: str, vision: bool) -> str:
    """The image as a URL for an OpenAI-style `image_url` part: a `data:` URL for base64 sources."""
    if not vision:
        raise InvalidRequest(f"{where}: image input is not supported by model {model}")
    source = block.source
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if media_type not in IMAGE_TYPES:
            raise InvalidRequest(f"{where}.source.media_type: must be one of {', '.join(sorted(IMAGE_TYPES))}")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source.data: base64 image data is required")
        return f"data:{media_type};base64,{data}"
    if kind == "url" and isinstance(source.get("url"), str) and source["url"].startswith(("http://", "https://")):
        return source["url"]
    raise InvalidRequest(f"{where}.source: expected a `base64` source or a `url` source with an http(s) URL")


def tool_result_text(block: ToolResultBlock, where: str, model: str, vision: bool) -> str:
    """A tool result's content as text (images in results are not forwarded, even to vision engines)."""
    content = block.content
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        parts = []
        for part in content:
            if part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif part.get("type") == "image":
                detail = " in tool results" if vision else ""
                raise InvalidRequest(f"{where}: image input{detail} is not supported by model {model}")
        text = "\n".join(parts)
    return f"Error: {text}" if block.is_error else text


def _titled(block: DocumentBlock, text: str) -> str:
    return "\n".join(part for part in (block.title, block.context, text) if part)
