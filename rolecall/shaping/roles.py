"""Role-play roles (MiniMax's `user_system`, `group`, `sample_message_*`) as plain chat text.

Open models know only system/user/assistant, and strict templates reject anything else, so the roles
become words. The leading run of role-play messages (before the conversation starts) becomes labelled
sections of the system turn; one that arrives later becomes a bracketed note on the next user turn.
Both are append-only: a new turn never changes how earlier ones render, so the prefix cache holds.
"""

from __future__ import annotations

ROLE_PLAY_ROLES = frozenset({"user_system", "group", "sample_message_user", "sample_message_ai"})

_SECTION = {
    "user_system": "The user's character",
    "group": "Scene",
}


def setup_section(role: str, text: str, name: str | None) -> str:
    """One role-play message of the leading setup, as a line of the system turn."""
    if role in _SECTION:
        return f"{_SECTION[role]}: {text}"
    speaker = name or ("User" if role == "sample_message_user" else "You")
    return f"Example (style only, not part of this conversation) {speaker}: {text}"


def inline_note(role: str, text: str, name: str | None) -> str:
    """A role-play message that arrives mid-conversation, as a note inside the next user turn."""
    return f"[{setup_section(role, text, name)}]"
