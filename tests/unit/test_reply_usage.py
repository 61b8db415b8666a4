"""`output_tokens` from an engine's usage: llama.cpp counts the end-of-generation token, which is not output."""

from __future__ import annotations

import pytest

from rolecall.core.chunks import FinishChunk, TextChunk, UsageChunk
from rolecall.engines.openai_wire import ReplyUsage


def usage_after(finish: str | None, counts_end_token: bool = True) -> int:
    reader = ReplyUsage(counts_end_token)
    chunks = [TextChunk("Yes."), *([FinishChunk(finish)] if finish else []), UsageChunk(30, 3, 10)]  # type: ignore[arg-type]
    *_, usage = [reader.adjust(chunk) for chunk in chunks]
    assert isinstance(usage, UsageChunk) and (usage.prompt_tokens, usage.cached_tokens) == (30, 10)
    return usage.completion_tokens


@pytest.mark.parametrize(("finish", "expected"), [("stop", 2), ("tool_calls", 2), ("length", 3), (None, 3)])
def test_the_end_token_is_not_an_output_token(finish: str | None, expected: int) -> None:
    assert usage_after(finish) == expected


def test_servers_not_known_to_count_it_pass_unchanged() -> None:
    assert usage_after("stop", counts_end_token=False) == 3
