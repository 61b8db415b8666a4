"""Character cards built by the tests: a real (tiny) PNG image with the card in a `tEXt` chunk."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from rolecall.shaping.card_files import PNG_SIGNATURE, png_with_card


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(rgb: tuple[int, int, int] = (200, 120, 40), size: int = 8) -> bytes:
    """A valid size x size RGB PNG of one colour."""
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def png_card(card: dict[str, Any], keyword: str = "chara") -> bytes:
    return png_with_card(tiny_png(), card, keyword)


MIRA_DATA: dict[str, Any] = {
    "name": "Mira",
    "description": "{{char}} keeps the Salt Lantern tavern in a fishing town. She speaks in short sentences.",
    "personality": "gruff, kind, shrewd",
    "scenario": "A stormy night at the Salt Lantern; {{user}} comes in soaked.",
    "first_mes": "*{{char}} looks up from the bar.* Boots off the bench, {{user}}.",
    "mes_example": (
        "<START>\n{{user}}: Evening, Mira. Any stew left?\n{{char}}: For paying customers. Sit.\n"
        "<START>\n<USER>: I'll pay you back next week.\n<BOT>: You said that last week.\nEat first."
    ),
    "creator_notes": "For tests.",
    "system_prompt": "",
    "post_history_instructions": "Stay in character as {{char}}.",
    "alternate_greetings": ["Closed. Unless you're {{user}}."],
    "tags": ["tavern"],
    "creator": "rolecall",
    "character_version": "1",
    "extensions": {},
    "character_book": {
        "scan_depth": 2,
        "entries": [
            {
                "keys": ["harbour master"],
                "content": "The harbour master, Oskar, wants {{user}} arrested.",
                "enabled": True,
                "insertion_order": 2,
            },
            {"keys": ["stew"], "content": "The stew is fish, always.", "enabled": True, "insertion_order": 1},
            {"keys": ["ghost"], "content": "Disabled.", "enabled": False, "insertion_order": 0},
        ],
    },
}


def v2_card(**changes: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {**MIRA_DATA, **changes}}


def v3_card(**changes: Any) -> dict[str, Any]:
    data = {**MIRA_DATA, "group_only_greetings": [], "nickname": "Old Mira", **changes}
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}
