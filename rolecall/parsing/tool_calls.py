"""Tool calls an engine left in its text as markup, parsed into calls.

Syntaxes (the per-model `tool_parser` setting, or chosen by rolecall when it prompts for tools itself):

- `hermes`: `<tool_call>{"name": …, "arguments": {…}}</tool_call>` (Qwen, Hermes, many fine-tunes);
- `minimax_m2`: `<minimax:tool_call><invoke name="…"><parameter name="k">v</parameter>…</invoke></minimax:tool_call>`,
  where values are text and the tool's schema says what type each one is.

(A forced choice's schema-constrained answer is parsed by parsing/forced_call.py.)

Text outside the markup streams through; text that could be the start of a tag is held back until
it is known not to be one.

`ToolMarkupParser` scans text; `ToolMarkup` is the engine-output stage around it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rolecall.core.chunks import EngineChunk, TextChunk, ToolCallChunk
from rolecall.parsing.markers import PartialMarkers

TOOL_SYNTAXES = ("hermes", "minimax_m2")

_TAGS = {"hermes": ("<tool_call>", "</tool_call>"), "minimax_m2": ("<minimax:tool_call>", "</minimax:tool_call>")}
_PARTIAL_OPEN = {syntax: PartialMarkers((tags[0],)) for syntax, tags in _TAGS.items()}
_INVOKE = re.compile(r'<invoke\s+name\s*=\s*"([^"]*)"\s*>(.*?)</invoke>', re.S)
_PARAMETER = re.compile(r'<parameter\s+name\s*=\s*"([^"]*)"\s*>(.*?)</parameter>', re.S)


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # a JSON object, keys in the model's order


Piece = str | ParsedCall


class ToolMarkupParser:
    """Feed answer text; get back text and calls, in order. `schemas` maps tool names to input schemas."""

    def __init__(self, syntax: str, schemas: dict[str, dict[str, Any]]) -> None:
        if syntax not in TOOL_SYNTAXES:
            raise ValueError(f"unknown tool-call syntax {syntax!r}")
        self._syntax = syntax
        self._schemas = schemas
        self._open, self._close = _TAGS[syntax]
        self._partial_open = _PARTIAL_OPEN[syntax]
        self._held = ""
        self._inside = False
        self._close_from = 0  # inside a call: where the end tag may start, so a long body is not searched again
        self._after_call = False  # whitespace right after a call is layout, not answer

    def feed(self, text: str) -> list[Piece]:
        if self._plain(text):  # no tag can start in this text and none is pending (the common token)
            self._after_call = False
            return [text]
        self._held += text
        pieces: list[Piece] = []
        while True:
            if not self._inside:
                start = self._held.find(self._open)
                if start < 0:
                    self._emit_text(pieces, self._partial_open.length(self._held))
                    return pieces
                before, self._held = self._held[:start], self._held[start + len(self._open) :]
                self._append_text(pieces, before.rstrip())
                self._inside, self._close_from = True, 0
            end = self._held.find(self._close, self._close_from)
            if end < 0:
                self._close_from = max(0, len(self._held) - len(self._close) + 1)
                return pieces
            body, self._held = self._held[:end], self._held[end + len(self._close) :]
            self._inside = False
            calls = self._calls(body)
            if calls:
                pieces.extend(calls)
                self._after_call = True
            else:  # not a call after all: the markup is text
                self._append_text(pieces, self._open + body + self._close)

    def _plain(self, text: str) -> bool:
        """All answer, as it came: nothing held, no tag character, no whitespace at an end that would be cut."""
        if not text or self._held or self._inside or self._open[0] in text or text[-1].isspace():
            return False
        return not (self._after_call and text[0].isspace())

    def flush(self) -> list[Piece]:
        """End of stream: an unclosed call is parsed if it is complete enough, else returned as text."""
        held, self._held = self._held, ""
        if self._inside:
            self._inside = False
            calls: list[Piece] = [*self._calls(held)]
            return calls or [self._open + held]
        pieces: list[Piece] = []
        self._append_text(pieces, held)
        return pieces

    def _emit_text(self, pieces: list[Piece], keep: int) -> None:
        # Trailing whitespace is held too: if a call follows, it is layout before the tag.
        ready = self._held[: len(self._held) - keep]
        visible = ready.rstrip()
        self._held = ready[len(visible) :] + self._held[len(ready) :]
        self._append_text(pieces, visible)

    def _append_text(self, pieces: list[Piece], text: str) -> None:
        if self._after_call:
            text = text.lstrip()
        if text:
            self._after_call = False
            pieces.append(text)

    def _calls(self, body: str) -> list[ParsedCall]:
        if self._syntax == "minimax_m2":
            return [self._invoke(name, inner) for name, inner in _INVOKE.findall(body)]
        call = json_call(body)
        return [call] if call is not None else []

    def _invoke(self, name: str, inner: str) -> ParsedCall:
        properties = (self._schemas.get(name) or {}).get("properties") or {}
        arguments = {key: _typed(value, properties.get(key) or {}) for key, value in _PARAMETER.findall(inner)}
        return ParsedCall(html.unescape(name), json.dumps(arguments, ensure_ascii=False))


class CallNumbering:
    """Parsed text and calls as engine chunks. Each call gets an index and id of its own, so the assembler
    opens one tool_use block per call; without parallel calls (`disable_parallel_tool_use`), calls after
    the first are dropped."""

    def __init__(self, parallel_calls: bool = True) -> None:
        self._parallel_calls = parallel_calls
        self._calls = 0

    def chunks(self, pieces: Iterable[str | ParsedCall]) -> list[EngineChunk]:
        out: list[EngineChunk] = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(TextChunk(piece))
            elif self._parallel_calls or not self._calls:
                out.append(ToolCallChunk(self._calls, f"parsed-{self._calls}", piece.name, piece.arguments))
                self._calls += 1
        return out


class ToolMarkup:
    """The engine-output stage for tool-call markup (a `ChunkParser` of engine chunks): answer text in,
    text and tool calls out, in order; other chunks pass."""

    def __init__(self, syntax: str, schemas: dict[str, dict[str, Any]], parallel_calls: bool = True) -> None:
        self._parser = ToolMarkupParser(syntax, schemas)
        self._numbering = CallNumbering(parallel_calls)

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        if not isinstance(chunk, TextChunk):
            return [chunk]
        pieces = self._parser.feed(chunk.text)
        if len(pieces) == 1 and pieces[0] == chunk.text:  # plain text, nothing held: the chunk goes on as it is
            return [chunk]
        return self._numbering.chunks(pieces)

    def flush(self) -> list[EngineChunk]:
        return self._numbering.chunks(self._parser.flush())


def json_call(body: str) -> ParsedCall | None:
    """`{"name": …, "arguments": {…}}` (arguments may also be a JSON string, or named `parameters`) as a call."""
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):  # some models encode the arguments object as a string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(call["name"], json.dumps(arguments, ensure_ascii=False))


def _typed(raw: str, schema: dict[str, Any]) -> Any:
    """A MiniMax-M2 parameter value as the type its schema declares; text when it does not parse as one."""
    value = raw.strip("\n")
    declared = schema.get("type")
    if declared == "string" or declared == ["string"]:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
