"""Character cards -> MiniMax roles: V1/V2/V3, JSON and PNG, the mapping, and a table of malformed files."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest

from rolecall.cli.lorebook import fired_entries, user_message_with_notes
from rolecall.core.errors import InvalidRequest
from rolecall.shaping.card_files import png_text_chunks, png_with_card
from rolecall.shaping.cards import import_card
from tests.support.cards import MIRA_DATA, png_card, tiny_png, v2_card, v3_card


def test_v2_json_maps_every_field_onto_minimax_roles() -> None:
    out = import_card(json.dumps(v2_card()).encode(), user_name="Tomas")
    assert out["spec"] == "chara_card_v2"
    assert out["system"] == (
        "Mira keeps the Salt Lantern tavern in a fishing town. She speaks in short sentences.\n\n"
        "Mira's personality: gruff, kind, shrewd"
    )
    assert out["messages"] == [
        {"role": "group", "content": "A stormy night at the Salt Lantern; Tomas comes in soaked."},
        {"role": "sample_message_user", "content": "Evening, Mira. Any stew left?"},
        {"role": "sample_message_ai", "content": "For paying customers. Sit."},
        {"role": "sample_message_user", "content": "I'll pay you back next week."},
        {"role": "sample_message_ai", "content": "You said that last week.\nEat first."},
    ]
    assert out["greetings"] == [
        "*Mira looks up from the bar.* Boots off the bench, Tomas.",
        "Closed. Unless you're Tomas.",
    ]
    assert out["post_history_instructions"] == "Stay in character as Mira."
    assert out["creator_notes"] == "For tests."
    # Disabled entries are left out; the rest come in insertion order, macros filled.
    assert out["lorebook"] == {
        "scan_depth": 2,
        "entries": [
            {
                "keys": ["stew"],
                "secondary_keys": [],
                "selective": False,
                "constant": False,
                "case_sensitive": False,
                "insertion_order": 1,
                "content": "The stew is fish, always.",
            },
            {
                "keys": ["harbour master"],
                "secondary_keys": [],
                "selective": False,
                "constant": False,
                "case_sensitive": False,
                "insertion_order": 2,
                "content": "The harbour master, Oskar, wants Tomas arrested.",
            },
        ],
    }


def test_v3_nickname_is_the_char_macro_and_the_default_user_is_user() -> None:
    out = import_card(json.dumps(v3_card()).encode())
    assert out["spec"] == "chara_card_v3"
    assert out["name"] == "Mira" and out["char_name"] == "Old Mira"
    assert out["system"].startswith("Old Mira keeps the Salt Lantern")
    assert out["greetings"][0] == "*Old Mira looks up from the bar.* Boots off the bench, User."


def test_v1_card_without_spec_is_its_own_data() -> None:
    v1 = {k: MIRA_DATA[k] for k in ("name", "description", "personality", "scenario", "first_mes", "mes_example")}
    out = import_card(json.dumps(v1).encode(), "Tomas")
    assert out["spec"] == "chara_card_v1"
    assert out["messages"][0] == {
        "role": "group",
        "content": "A stormy night at the Salt Lantern; Tomas comes in soaked.",
    }
    assert out["lorebook"] == {"scan_depth": None, "entries": []}


@pytest.mark.parametrize("make", [v2_card, v3_card])
def test_png_cards_read_like_their_json(make) -> None:
    card = make()
    assert import_card(png_card(card, "ccv3" if card["spec"] == "chara_card_v3" else "chara")) == import_card(
        json.dumps(card).encode()
    )


def test_ccv3_chunk_wins_over_chara_whatever_their_order() -> None:
    both = png_card(v2_card(name="Old"), "chara")
    both = png_with_card(both, v3_card(name="New", nickname=""), "ccv3")
    assert import_card(both)["name"] == "New"
    assert set(png_text_chunks(both)) == {"chara", "ccv3"}


def test_system_prompt_comes_first_and_original_expands_to_nothing() -> None:
    out = import_card(json.dumps(v2_card(system_prompt="{{original}} Write as {{CHAR}}, never as {{User}}.")).encode())
    assert out["system"].startswith("Write as Mira, never as User.\n\nMira keeps")


def test_examples_take_literal_names_and_drop_text_before_a_speaker() -> None:
    mes = "preamble\n<START>\nTomas: Hi\nMira: Sit.\n\n<start>\n{{char}}: Only the AI speaks here"
    out = import_card(json.dumps(v2_card(mes_example=mes, scenario="")).encode(), "Tomas")
    assert out["messages"] == [
        {"role": "sample_message_user", "content": "Hi"},
        {"role": "sample_message_ai", "content": "Sit."},
        {"role": "sample_message_ai", "content": "Only the AI speaks here"},
    ]


def _png_with_bad_crc() -> bytes:
    raw = bytearray(png_card(v2_card()))
    raw[-20] ^= 0xFF  # inside the tEXt chunk's payload
    return bytes(raw)


def _png_text(keyword: bytes, text: bytes) -> bytes:
    data = keyword + b"\x00" + text
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    png = tiny_png()
    at = png.rindex(b"IEND") - 4
    return png[:at] + chunk + png[at:]


def _b64(value: object) -> bytes:
    return base64.b64encode(json.dumps(value).encode())


MALFORMED = [
    (b"", "not a character card"),
    (b"GIF89a....", "not a character card"),
    (b"[1, 2]", "not a character card"),
    (b'{"spec": "chara_card_v2", "data": ', "not valid UTF-8 JSON"),
    (tiny_png(), "no `ccv3` or `chara` tEXt chunk"),
    (tiny_png()[:30], "truncated"),
    (png_card(v2_card())[:-30], "truncated"),
    (_png_with_bad_crc(), "fails its CRC"),
    (_png_text(b"chara", b"not base64 at all!"), "`chara` chunk is not valid base64"),
    (_png_text(b"chara", base64.b64encode(b"\xff\xfe")), "not valid UTF-8 JSON"),
    (_png_text(b"ccv3", _b64(["a list"])), "must hold a JSON object"),
    (json.dumps({"spec": "chara_card_v9", "data": {}}).encode(), "unsupported spec 'chara_card_v9'"),
    (json.dumps({"spec": "chara_card_v2", "data": "Mira"}).encode(), "needs a `data` object"),
    (json.dumps(v2_card(name="")).encode(), "has no `name`"),
    (json.dumps(v2_card(description=["a", "list"])).encode(), "`description` must be a string"),
]


@pytest.mark.parametrize(("raw", "says"), MALFORMED)
def test_malformed_cards_are_invalid_requests_that_say_why(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        import_card(raw)
    assert says in caught.value.message
    assert caught.value.status == 400


BOOK = import_card(json.dumps(v2_card()).encode(), "Tomas")["lorebook"]


@pytest.mark.parametrize(
    ("recent", "fired"),
    [
        (["Evening."], []),
        (["Is the HARBOUR MASTER here?"], ["The harbour master, Oskar, wants Tomas arrested."]),
        # Only the newest scan_depth (2) messages are scanned.
        (["stew?", "Sit.", "Thanks."], []),
        (
            ["Harbour master!", "stew, please"],
            ["The stew is fish, always.", "The harbour master, Oskar, wants Tomas arrested."],
        ),
    ],
)
def test_lorebook_rule(recent: list[str], fired: list[str]) -> None:
    assert fired_entries(BOOK, recent) == fired


def test_lorebook_selective_constant_and_case_sensitive_entries() -> None:
    book = {
        "scan_depth": None,
        "entries": [
            {"keys": ["ship"], "secondary_keys": ["storm"], "selective": True, "content": "A", "insertion_order": 0},
            {"keys": [], "constant": True, "content": "B", "insertion_order": 1},
            {"keys": ["Oskar"], "case_sensitive": True, "content": "C", "insertion_order": 2},
        ],
    }
    assert fired_entries(book, ["the ship sank", "oskar"]) == ["B"]
    assert fired_entries(book, ["a ship in the storm", "Oskar"]) == ["A", "B", "C"]
    assert user_message_with_notes("Hi", ["A"], "Stay terse.") == "[Lore: A]\nHi\n[Instructions: Stay terse.]"
    assert user_message_with_notes("Hi", []) == "Hi"
