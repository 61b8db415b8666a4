"""What one benchmark sends: prompt and answer lengths, streaming, turns per conversation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Common short English words: about one token each in most tokenizers, so `prompt_tokens` words
# come out close to that many tokens. The served count is reported beside it (mean_input_tokens).
_FILLER = [
    "the",
    "sea",
    "was",
    "calm",
    "and",
    "the",
    "light",
    "on",
    "the",
    "hill",
    "turned",
    "slow",
    "over",
    "the",
    "dark",
    "water",
    "while",
    "the",
    "old",
    "keeper",
    "read",
    "his",
    "book",
    "by",
    "the",
    "fire",
    "and",
    "wrote",
    "down",
    "the",
    "ships",
    "that",
    "came",
    "past",
    "in",
    "the",
    "night",
]

_TASK = "Write a long story about a lighthouse keeper and a storm."


@dataclass(frozen=True, slots=True)
class Workload:
    prompt_tokens: int = 64  # approximate length of the first user message
    max_tokens: int = 128
    stream: bool = True
    turns: int = 1  # requests per conversation; later turns carry the whole history
    top_k: int | None = 1  # greedy by default: both sides of a comparison generate the same text
    model: str = "MiniMax-M2.7"

    def first_message(self, tag: str) -> str:
        """The opening user message. `tag` makes it unique, so no run reuses another's prompt cache."""
        words = max(self.prompt_tokens - 16, 0)
        filler = " ".join(_FILLER[i % len(_FILLER)] for i in range(words))
        return f"[{tag}] {filler}\n\n{_TASK}".strip()

    @staticmethod
    def follow_up(turn: int) -> str:
        return f"Turn {turn + 1}: go on with the story, and name the storm."

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
