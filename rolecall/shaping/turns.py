"""The conversation as the model sees it: turns collected in order, consecutive user or assistant turns
merged (as the Anthropic API does, and as strict chat templates require), an empty final assistant turn
dropped (no prefill)."""

from __future__ import annotations

from rolecall.core.conversation import Turn


class TurnCollector:
    """Collects turns, merging consecutive user or assistant turns."""

    def __init__(self) -> None:
        self._turns: list[Turn] = []

    def add(self, turn: Turn) -> None:
        previous = self._turns[-1] if self._turns else None
        if previous is not None and previous.role == turn.role and turn.role in ("user", "assistant"):
            self._turns[-1] = Turn(
                turn.role,
                join(previous.text, turn.text),
                _join_optional(previous.reasoning, turn.reasoning),
                previous.tool_calls + turn.tool_calls,
                images=previous.images + turn.images,
            )
        else:
            self._turns.append(turn)

    def done(self) -> list[Turn]:
        turns = self._turns
        # An empty final assistant message means "no prefill".
        if turns and turns[-1].role == "assistant" and not (turns[-1].text or turns[-1].tool_calls):
            turns = turns[:-1]
        return turns


def join(a: str, b: str) -> str:
    """Two texts of one turn, a newline between them when both are there."""
    return f"{a}\n{b}" if a and b else a or b


def _join_optional(a: str | None, b: str | None) -> str | None:
    return join(a or "", b or "") or None if (a or b) else None
