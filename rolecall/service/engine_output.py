"""Engine chunks -> the chunks the block assembler sees: one chain of parser stages (parsing/chain), built
per request from the model's settings and the request. Reasoning and tool calls the engine left in its text
are parsed out (per-model `reasoning` and `tool_parser`, or rolecall's own tool prompting), then the answer
is cut at the first stop sequence. A stage that has nothing to do for this request is not in the chain."""

from __future__ import annotations

from rolecall.core.chunks import EngineChunk
from rolecall.core.conversation import ToolSpec
from rolecall.parsing.chain import ChunkParser, chain
from rolecall.parsing.forced_call import ForcedCall
from rolecall.parsing.reasoning import DropReasoning, ThinkTags
from rolecall.parsing.stops import StopSequences
from rolecall.parsing.tool_calls import ToolMarkup


def engine_output(
    reasoning: str,
    tool_syntax: str | None,
    tools: tuple[ToolSpec, ...],
    parallel_calls: bool = True,
    stops: StopSequences | None = None,
) -> ChunkParser[EngineChunk, EngineChunk]:
    """The chain for one generation: `feed` engine chunks as they arrive, `flush` at the end.

    `reasoning` is the model's setting (parsing/reasoning), `tool_syntax` the markup its text is parsed in
    (None: none is parsed), `parallel_calls` False keeps only the first parsed call, and `stops` is the
    turn's stop stage (it tells the turn which stop matched)."""
    stages: list[ChunkParser[EngineChunk, EngineChunk]] = []
    if reasoning in ("auto", "tags"):
        stages.append(ThinkTags(opened_in_prompt=reasoning == "tags"))
    elif reasoning == "none":
        stages.append(DropReasoning())
    if tool_syntax == "json":
        stages.append(ForcedCall())
    elif tool_syntax is not None:
        stages.append(ToolMarkup(tool_syntax, {tool.name: tool.parameters for tool in tools}, parallel_calls))
    if stops is not None and stops.active:
        stages.append(stops)
    return chain(*stages)
