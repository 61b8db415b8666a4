"""Role-play roles (MiniMax's `user_system`, `group`, `sample_message_*`) as plain chat text.

Open models know only system/user/assistant, and strict templates reject anything else, so the roles
become words (docs/role-play.md shows the exact output):

- the leading run of role-play messages, sent before the conversation starts, becomes labelled
  sections of the one system turn, after the character (the top-level `system`); consecutive
  example messages share one "Example exchanges" section, labelled as style, not history;
- a role-play message that arrives once the conversation has started becomes a bracketed note,
  one per message, at the head of the next user turn.

Both are append-only: a new message never changes how earlier ones render, so the prefix cache holds.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLE_PLAY_ROLES = frozenset({"user_system", "group", "sample_message_user", "sample_message_ai"})

_LABELS = {"user_system": "The user's character", "group": "Scene"}
_SPEAKERS = {"sample_message_user": "User", "sample_message_ai": "You"}
EXAMPLES_HEADING = "Example exchanges (they show the style only; they are not part of this conversation):"
_EXAMPLE_NOTE = "Example (style only, not part of this conversation)"


@dataclass(frozen=True, slots=True)
class RolePlayMessage:
    role: str
    text: str
    name: str | None = None

    @property
    def is_example(self) -> bool:
        return self.role in _SPEAKERS

    @property
    def speaker(self) -> str:
        return self.name or _SPEAKERS[self.role]

    @property
    def label(self) -> str:
        return f"{_LABELS[self.role]} ({self.name})" if self.name else _LABELS[self.role]


def setup_sections(messages: list[RolePlayMessage]) -> str:
    """The leading role-play messages as sections of the system turn, in the order they were sent."""
    sections: list[str] = []
    examples: list[str] = []
    for message in messages:
        if message.is_example:
            examples.append(f"{message.speaker}: {message.text}")
            continue
        if examples:
            sections.append("\n".join((EXAMPLES_HEADING, *examples)))
            examples = []
        sections.append(f"{message.label}: {message.text}")
    if examples:
        sections.append("\n".join((EXAMPLES_HEADING, *examples)))
    return "\n\n".join(sections)


def inline_note(message: RolePlayMessage) -> str:
    """A role-play message that arrives mid-conversation, as a note inside the next user turn.

    Each message is its own note, so a later one never reopens an earlier note."""
    if message.is_example:
        return f"[{_EXAMPLE_NOTE} {message.speaker}: {message.text}]"
    return f"[{message.label}: {message.text}]"
