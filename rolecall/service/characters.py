"""Character cards into MiniMax role-play input (the parsing itself is pure: `shaping.cards`)."""

from __future__ import annotations

from typing import Any

from rolecall.shaping.cards import DEFAULT_USER, import_card


def import_character(raw: bytes, user_name: str) -> dict[str, Any]:
    """A card file (PNG or JSON bytes) as MiniMax role-play input; `InvalidRequest` when it is not a card."""
    return import_card(raw, user_name or DEFAULT_USER)
