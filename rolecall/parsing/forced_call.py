"""The answer of a forced tool choice decoded under a JSON schema: one `{"name": …, "arguments": {…}}`
object (shaping/tools.forced_call_schema), streamed as a tool call while it is generated.

Schema-constrained decoders emit properties in schema order, so the name arrives first; once
`"arguments":` has been seen, the arguments object streams through as it grows. Only the closing
brace of the outer object (and whitespace around it) is held back, since it is not part of the arguments.

`ForcedCallStream` scans text; `ForcedCall` is the engine-output stage around it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rolecall.core.chunks import EngineChunk, TextChunk, ToolCallChunk
from rolecall.parsing.tool_calls import CallNumbering, ParsedCall, json_call

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\{)')


@dataclass(frozen=True, slots=True)
class CallFragment:
    """Part of the one forced call: the first fragment names the tool, the rest extend its arguments."""

    name: str | None
    arguments: str


class ForcedCallStream:
    """Feed the constrained answer; get back call fragments, or, at the end, text if it was not a call."""

    def __init__(self) -> None:
        self._held = ""
        self._streaming = False
        self._undecided = True  # before the head is seen: it may still turn out not to be a call

    def feed(self, text: str) -> list[CallFragment]:
        self._held += text
        out: list[CallFragment] = []
        if self._undecided:
            head = _HEAD.match(self._held)
            if head is None:
                return out
            self._undecided, self._streaming = False, True
            out.append(CallFragment(_unescape(head.group(1)), ""))
            self._held = self._held[head.end() :]
        # Hold back a trailing run of `}` and whitespace: its last brace closes the outer object.
        body = self._held.rstrip("} \n\r\t")
        if body:
            out.append(CallFragment(None, body))
            self._held = self._held[len(body) :]
        return out

    def flush(self) -> list[CallFragment | ParsedCall | str]:
        held, self._held = self._held, ""
        if self._streaming:
            tail = held.rstrip()
            tail = tail[:-1].rstrip() if tail.endswith("}") else tail
            return [CallFragment(None, tail)] if tail else []
        # The head never matched (another key order, or cut short): parse the whole answer at once.
        call = json_call(held)
        if call is not None:
            return [call]
        return [held] if held else []


class ForcedCall:
    """The engine-output stage for a forced call's constrained answer (a `ChunkParser` of engine chunks):
    answer text in, the call's fragments out as it streams (or, at the end, a whole call or text)."""

    def __init__(self) -> None:
        self._stream = ForcedCallStream()
        self._numbering = CallNumbering()

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        if not isinstance(chunk, TextChunk):
            return [chunk]
        return self._chunks(self._stream.feed(chunk.text))

    def flush(self) -> list[EngineChunk]:
        return self._chunks(self._stream.flush())

    def _chunks(self, pieces: Sequence[CallFragment | ParsedCall | str]) -> list[EngineChunk]:
        out: list[EngineChunk] = []
        for piece in pieces:
            if isinstance(piece, CallFragment):  # the first fragment names the call and opens it
                out.append(ToolCallChunk(0, "forced" if piece.name is not None else None, piece.name, piece.arguments))
            else:
                out += self._numbering.chunks([piece])
        return out


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)
