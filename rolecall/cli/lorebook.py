"""The lorebook rule shared by `rolecall chat` and the playground (playground/lorebook.js mirrors it).

Before each request the client scans the newest `scan_depth` messages (the card book's own, else 2),
the new user message included. An entry fires when it is `constant`, or when one of its `keys` occurs in
that text (a plain substring, case-insensitive unless the entry is `case_sensitive`) and, for a
`selective` entry with `secondary_keys`, one of those occurs too. The fired entries' contents, in
`insertion_order`, go at the head of the new user message as `[Lore: …]` lines; the card's
`post_history_instructions` go after it as `[Instructions: …]`. Only the message being sent carries them:
earlier turns are sent as they were typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_SCAN_DEPTH = 2


def fired_entries(book: dict[str, Any], recent: Sequence[str]) -> list[str]:
    """The contents of the entries whose keys occur in the newest `scan_depth` of `recent` (oldest first)."""
    depth = book.get("scan_depth") or DEFAULT_SCAN_DEPTH
    text = "\n".join(recent[-depth:])
    fired = []
    for entry in book.get("entries") or []:
        if entry.get("constant") or _fires(entry, text):
            fired.append(entry)
    fired.sort(key=lambda e: e.get("insertion_order", 0))
    return [entry["content"] for entry in fired]


def _fires(entry: dict[str, Any], text: str) -> bool:
    def occurs(keys: list[str]) -> bool:
        if entry.get("case_sensitive"):
            return any(k and k in text for k in keys)
        folded = text.lower()  # as the playground's toLowerCase, so both fire alike
        return any(k and k.lower() in folded for k in keys)

    if not occurs(entry.get("keys") or []):
        return False
    secondary = entry.get("secondary_keys") or []
    return not (entry.get("selective") and secondary) or occurs(secondary)


def user_message_with_notes(text: str, lore: Sequence[str], instructions: str = "") -> str:
    """The new user message as sent: lore notes first, the typed text, then post-history instructions."""
    lines = [f"[Lore: {content}]" for content in lore]
    lines.append(text)
    if instructions:
        lines.append(f"[Instructions: {instructions}]")
    return "\n".join(lines)
