"""The output of one generation as neutral events, in the order a client sees them:

    Started  (BlockStarted  BlockDelta*  BlockSigned?  BlockStopped)*  Finished

Blocks are indexed 0, 1, 2, ... in start order and one is open at a time; a delta's kind is its block's.
A thinking block is signed (BlockSigned) right before it stops. Tool-call argument deltas are, joined, a
valid JSON prefix at every step and one complete object at the block's end. Each door's encoder turns
these into its own wire events (SSE events, OpenAI chunks) and its fold into the non-streaming body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rolecall.core.usage import Usage

BlockKind = Literal["text", "thinking", "tool_call"]
# Why the turn ended: the model ended it, the token cap (or the context) was reached, one of the request's
# stop sequences matched, or it ended with tool calls.
FinishReason = Literal["end", "length", "stop_sequence", "tool_calls"]


@dataclass(frozen=True, slots=True)
class Started:
    """The prompt is counted and the engine accepted it. `usage` has the prompt (and the cached part of it
    wherever the engine tells it before the first token); no output yet."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class BlockStarted:
    index: int
    kind: BlockKind
    tool_name: str | None = None  # tool_call blocks: the tool called


@dataclass(frozen=True, slots=True)
class BlockDelta:
    index: int
    kind: BlockKind
    text: str  # visible text, reasoning text, or the next fragment of a tool call's JSON arguments


@dataclass(frozen=True, slots=True)
class BlockSigned:
    """A thinking block's signature (HMAC over its text), sent once, just before the block stops."""

    index: int
    signature: str


@dataclass(frozen=True, slots=True)
class BlockStopped:
    index: int


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    stop_sequence: str | None  # the stop sequence that matched (reason "stop_sequence"), else None
    usage: Usage  # final totals


OutputEvent = Started | BlockStarted | BlockDelta | BlockSigned | BlockStopped | Finished
