"""Character cards (V1, V2 `chara_card_v2`, V3 `chara_card_v3`) -> MiniMax role-play input.

The mapping (docs/role-play.md has the table): the AI's character (`system_prompt`, `description`,
`personality`) -> `system`; `scenario` -> a `group` message; `mes_example` -> `sample_message_user` /
`sample_message_ai` pairs; `first_mes` + `alternate_greetings` -> greetings (a leading assistant turn);
`post_history_instructions` and the lorebook are returned for the client to apply (they have no role).
`{{char}}` / `{{user}}` (and `<BOT>` / `<CHAR>` / `<USER>`) are substituted, case-insensitively.
"""

from __future__ import annotations

import re
from typing import Any

from rolecall.core.errors import InvalidRequest
from rolecall.shaping.card_files import card_object

SPECS = ("chara_card_v2", "chara_card_v3")
DEFAULT_USER = "User"
_TEXT_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
_CHAR_MACRO = re.compile(r"\{\{char\}\}|<bot>|<char>", re.IGNORECASE)
_USER_MACRO = re.compile(r"\{\{user\}\}|<user>", re.IGNORECASE)
_ORIGINAL_MACRO = re.compile(r"\{\{original\}\}", re.IGNORECASE)
_START = re.compile(r"^\s*<start>\s*$", re.IGNORECASE | re.MULTILINE)


def import_card(raw: bytes, user_name: str = DEFAULT_USER) -> dict[str, Any]:
    """A card file (PNG or JSON bytes) as MiniMax role-play input; `InvalidRequest` when it is not a card."""
    card = card_object(raw)
    spec, data = card_data(card)
    return character_roles(data, spec, user_name or DEFAULT_USER)


def card_data(card: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(spec, data): V2/V3 carry their fields under `data`; a V1 card (no `spec`) is its own data."""
    spec = card.get("spec")
    data: Any = card
    if spec is None:
        spec = "chara_card_v1"
    elif spec in SPECS:
        data = card.get("data")
        if not isinstance(data, dict):
            raise InvalidRequest(f"card: a {spec} card needs a `data` object; export the card again")
    else:
        raise InvalidRequest(
            f"card: unsupported spec {spec!r}; rolecall reads chara_card_v2, chara_card_v3 and V1 cards (no `spec`)"
        )
    for field in _TEXT_FIELDS:
        if not isinstance(data.get(field, ""), str):
            raise InvalidRequest(f"card: `{field}` must be a string")
    if not data.get("name"):
        raise InvalidRequest("card: the character has no `name`; give it one in the card editor")
    return spec, data


def character_roles(data: dict[str, Any], spec: str, user_name: str) -> dict[str, Any]:
    """The card's fields mapped onto MiniMax's roles, macros substituted."""
    char_name = _text(data, "nickname") or _text(data, "name")

    def fill(text: str) -> str:
        return _USER_MACRO.sub(lambda _: user_name, _CHAR_MACRO.sub(lambda _: char_name, text)).strip()

    messages: list[dict[str, str]] = []
    if scenario := fill(_text(data, "scenario")):
        messages.append({"role": "group", "content": scenario})
    messages.extend(example_messages(_text(data, "mes_example"), char_name, user_name))
    greetings = [fill(g) for g in [_text(data, "first_mes"), *_strings(data, "alternate_greetings")] if g.strip()]
    return {
        "spec": spec,
        "name": _text(data, "name"),
        "char_name": char_name,
        "user_name": user_name,
        "system": fill(system_text(data, char_name)),
        "messages": messages,
        "greetings": greetings,
        "post_history_instructions": fill(_ORIGINAL_MACRO.sub("", _text(data, "post_history_instructions"))),
        "lorebook": lorebook(data.get("character_book"), fill),
        "creator_notes": _text(data, "creator_notes"),
        "tags": _strings(data, "tags"),
    }


def system_text(data: dict[str, Any], char_name: str) -> str:
    """The AI's character: the card's own system prompt, then its description, then its personality.

    `{{original}}` in the card's system prompt stands for the prompt it replaces; rolecall has no global
    prompt of its own, so it expands to nothing."""
    parts = [
        _ORIGINAL_MACRO.sub("", _text(data, "system_prompt")).strip(),
        _text(data, "description").strip(),
    ]
    if personality := _text(data, "personality").strip():
        parts.append(f"{char_name}'s personality: {personality}")
    return "\n\n".join(p for p in parts if p)


def example_messages(mes_example: str, char_name: str, user_name: str) -> list[dict[str, str]]:
    """`mes_example` as sample messages: blocks split at `<START>`, a new message at every line that
    begins with a speaker (`{{user}}:` / `{{char}}:`, `<USER>:` / `<BOT>:`, or the literal names);
    other lines continue the message above. Text before a block's first speaker is dropped."""
    user_label = re.compile(rf"^\s*(?:\{{\{{user\}}\}}|<user>|{re.escape(user_name)})\s*:\s?", re.IGNORECASE)
    char_label = re.compile(rf"^\s*(?:\{{\{{char\}}\}}|<bot>|<char>|{re.escape(char_name)})\s*:\s?", re.IGNORECASE)
    messages: list[dict[str, str]] = []
    for block in _START.split(mes_example):
        current: dict[str, str] | None = None
        for line in block.splitlines():
            if match := user_label.match(line):
                current = {"role": "sample_message_user", "content": line[match.end() :]}
                messages.append(current)
            elif match := char_label.match(line):
                current = {"role": "sample_message_ai", "content": line[match.end() :]}
                messages.append(current)
            elif current is not None:
                current["content"] += "\n" + line
    for message in messages:
        text = _USER_MACRO.sub(lambda _: user_name, _CHAR_MACRO.sub(lambda _: char_name, message["content"]))
        message["content"] = text.strip()
    return [m for m in messages if m["content"]]


def lorebook(book: Any, fill: Any) -> dict[str, Any]:
    """The card's `character_book`: its scan depth and its enabled entries with their keys."""
    if not isinstance(book, dict):
        return {"scan_depth": None, "entries": []}
    entries = []
    for index, entry in enumerate(book.get("entries") or []):
        if not isinstance(entry, dict) or entry.get("enabled") is False:
            continue
        content = fill(str(entry.get("content") or ""))
        if not content:
            continue
        entries.append(
            {
                "keys": _strings(entry, "keys"),
                "secondary_keys": _strings(entry, "secondary_keys"),
                "selective": entry.get("selective") is True,
                "constant": entry.get("constant") is True,
                "case_sensitive": entry.get("case_sensitive") is True,
                "insertion_order": _number(entry.get("insertion_order"), index),
                "content": content,
            }
        )
    entries.sort(key=lambda e: e["insertion_order"])
    depth = book.get("scan_depth")
    return {"scan_depth": depth if isinstance(depth, int) and depth > 0 else None, "entries": entries}


def _text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    return value if isinstance(value, str) else ""


def _strings(data: dict[str, Any], field: str) -> list[str]:
    value = data.get(field)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _number(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
