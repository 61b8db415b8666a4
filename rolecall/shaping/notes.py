"""Where mid-conversation notes go: late system text and late role-play messages ride on a user turn.

Open models read a system turn in the middle of a conversation as the thing to answer (a 135M model
given Claude Code's agent list after "Say hello" describes the agents until the output cap), and strict
templates reject a second system turn outright. So every message that arrives once the conversation has
started and is not itself a turn (an inline `system`/`developer` message, a role-play message) becomes a
bracketed note in a user turn, ahead of that turn's own words, the way Claude Code itself puts its
`<system-reminder>` context before the prompt:

- a run of such messages rides on the user turn right after it;
- a run with no user turn right after it (it closes the request, or the assistant answers next) rides on
  the user turn right before it, so the user's words stay the last thing the model reads;
- a run with neither (after an assistant turn, at the end) is a user turn of its own where it was sent.

Every placement depends only on the messages next to the run, which a follow-up request sends again
unchanged: adding turns never moves a note, so the prefix cache holds (append-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["note", "user", "other"]


def note_hosts(kinds: Sequence[Kind]) -> dict[int, int | None]:
    """For each note (by message index), the index of the user message it rides on, or None for a
    user turn of its own at its place."""
    hosts: dict[int, int | None] = {}
    start = 0
    while start < len(kinds):
        if kinds[start] != "note":
            start += 1
            continue
        end = start
        while end < len(kinds) and kinds[end] == "note":
            end += 1
        host: int | None = None
        if end < len(kinds) and kinds[end] == "user":
            host = end
        elif start > 0 and kinds[start - 1] == "user":
            host = start - 1
        for index in range(start, end):
            hosts[index] = host
        start = end
    return hosts


@dataclass
class NotePlacement:
    """The notes of one request, placed: which messages are notes, and what each user message carries."""

    notes: set[int] = field(default_factory=set)  # indices of the messages that are notes
    before: dict[int, list[str]] = field(default_factory=dict)  # user message -> notes sent before it
    after: dict[int, list[str]] = field(default_factory=dict)  # user message -> notes sent after it
    alone: dict[int, str] = field(default_factory=dict)  # a note that is a user turn of its own, by its index


def place_notes(kinds: Sequence[Kind], texts: dict[int, str]) -> NotePlacement:
    """Place the notes (`texts`, by message index; an empty text places nothing) per `note_hosts`."""
    placement = NotePlacement(notes=set(texts))
    for i, host in note_hosts(kinds).items():
        if not texts[i]:
            continue
        if host is None:
            placement.alone[i] = texts[i]
        else:
            carried = placement.after if host < i else placement.before
            carried.setdefault(host, []).append(texts[i])
    return placement


def system_note(text: str, name: str | None = None) -> str:
    """A late system message as a note: `[System note: …]`, `[System note (<name>): …]` when named."""
    return f"[System note ({name}): {text}]" if name else f"[System note: {text}]"
