"""Engine chunks -> the chunks the block assembler sees: reasoning and tool calls the engine left in
its text are parsed out (per-model `reasoning` and `tool_parser`, or rolecall's own tool prompting)."""

from __future__ import annotations

from collections.abc import Sequence

from rolecall.core.chunks import EngineChunk, ReasoningChunk, TextChunk, ToolCallChunk
from rolecall.core.conversation import ToolSpec
from rolecall.parsing.forced_call import CallFragment, ForcedCallStream
from rolecall.parsing.reasoning import ThinkTagSplitter
from rolecall.parsing.tool_calls import ParsedCall, ToolMarkupParser


class EngineOutput:
    """feed() engine chunks as they arrive, flush() at the end; both return chunks in stream order."""

    def __init__(
        self, reasoning: str, tool_syntax: str | None, tools: tuple[ToolSpec, ...], parallel_calls: bool = True
    ) -> None:
        self._think = ThinkTagSplitter(opened_in_prompt=reasoning == "tags") if reasoning in ("auto", "tags") else None
        self._drop_reasoning = reasoning == "none"
        schemas = {tool.name: tool.parameters for tool in tools}
        self._markup: ToolMarkupParser | ForcedCallStream | None = None
        if tool_syntax == "json":
            self._markup = ForcedCallStream()
        elif tool_syntax is not None:
            self._markup = ToolMarkupParser(tool_syntax, schemas)
        self._calls = 0
        self._parallel_calls = parallel_calls  # False: `disable_parallel_tool_use`, later parsed calls are dropped

    def feed(self, chunk: EngineChunk) -> list[EngineChunk]:
        if isinstance(chunk, TextChunk):
            return self._split(*self._think.feed(chunk.text)) if self._think is not None else self._answer(chunk.text)
        if isinstance(chunk, ReasoningChunk) and self._drop_reasoning:
            return []
        return [chunk]

    def flush(self) -> list[EngineChunk]:
        out = self._split(*self._think.flush()) if self._think is not None else []
        if self._markup is not None:
            out += self._pieces(self._markup.flush())
        return out

    def _split(self, reasoning: str, answer: str) -> list[EngineChunk]:
        out: list[EngineChunk] = [ReasoningChunk(reasoning)] if reasoning else []
        return out + self._answer(answer) if answer else out

    def _answer(self, text: str) -> list[EngineChunk]:
        if self._markup is None:
            return [TextChunk(text)] if text else []
        return self._pieces(self._markup.feed(text))

    def _pieces(self, pieces: Sequence[str | ParsedCall | CallFragment]) -> list[EngineChunk]:
        out: list[EngineChunk] = []
        for piece in pieces:
            if isinstance(piece, ParsedCall):
                if self._calls and not self._parallel_calls:
                    continue
                # Each parsed call gets an id of its own, so the assembler opens one tool_use block per call.
                out.append(ToolCallChunk(self._calls, f"parsed-{self._calls}", piece.name, piece.arguments))
                self._calls += 1
            elif isinstance(piece, CallFragment):  # the forced call, streaming: its first fragment names it
                out.append(ToolCallChunk(0, "forced" if piece.name is not None else None, piece.name, piece.arguments))
            else:
                out.append(TextChunk(piece))
        return out
