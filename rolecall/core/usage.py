"""Token usage of one generation, in neutral terms; each door names the fields its own way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int  # the whole prompt, cached part included
    cached_tokens: int = 0  # of the prompt, read from the engine's prefix cache
    output_tokens: int = 0  # generated, reasoning and tool-call tokens included

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens the engine had to compute (Anthropic's `input_tokens`)."""
        return self.prompt_tokens - self.cached_tokens
