"""`rolecall chat` in a pseudo-terminal (pexpect) against the real server and the bundled model."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from rolecall.cli.chat import Terminal
from tests.conftest import API_KEY
from tests.support.cards import png_card, v2_card
from tests.support.server import free_port

pexpect = pytest.importorskip("pexpect")

ROLECALL = str(Path(sys.executable).with_name("rolecall"))
STATS = r"\[\d+ in \(\d+ cached\), \d+ out\]"


def _spawn(*args: str) -> pexpect.spawn:
    # NO_COLOR keeps the expected text free of styling codes (test_thinking_is_dimmed... covers the styling).
    env = {**os.environ, "NO_COLOR": "1"}
    child = pexpect.spawn(ROLECALL, ["chat", *args], encoding="utf-8", timeout=180, dimensions=(40, 200), env=env)
    child.logfile_read = sys.stdout  # shown with -s; pytest captures it otherwise
    return child


def test_two_turns_regen_undo_render_save(real_url: str, tmp_path: Path) -> None:
    card = tmp_path / "mira.png"
    card.write_bytes(png_card(v2_card()))
    saved = tmp_path / "chat.json"
    child = _spawn(
        "--url", real_url, "--key", API_KEY, "--character", str(card), "--user", "Tomas", "--max-tokens", "24"
    )
    child.expect_exact("Mira: *Mira looks up from the bar.* Boots off the bench, Tomas.")
    for text in ("Evening, Mira. Any stew left?", "The harbour master is after me."):
        child.expect_exact("you> ")
        child.sendline(text)
        child.expect_exact("Mira: ")
        child.expect(STATS)
    child.expect_exact("you> ")
    child.sendline("/regen")
    child.expect_exact("Mira: ")
    child.expect(STATS)
    child.expect_exact("you> ")
    child.sendline("/undo")
    child.expect_exact("(removed 2 messages)")
    child.expect_exact("you> ")
    child.sendline("/render")
    child.expect_exact("<|im_start|>system")
    child.expect(r"\[(\d+) input tokens, served by smollm2-135m-instruct\]")
    rendered = child.before
    assert "Evening, Mira. Any stew left?" in rendered and "harbour master is after me" not in rendered
    assert "(your next message)" in rendered
    child.expect_exact("you> ")
    child.sendline(f"/save {saved}")
    child.expect_exact("(saved to")
    child.expect_exact("you> ")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    conversation = json.loads(saved.read_text())["conversations"][0]
    assert [m["role"] for m in conversation["messages"]] == ["assistant", "user", "assistant"]
    assert conversation["character"]["name"] == "Mira"


def test_server_down_is_a_sentence_not_a_traceback() -> None:
    child = _spawn("--url", f"http://127.0.0.1:{free_port()}", "--key", API_KEY)
    child.expect(pexpect.EOF)
    child.close()
    assert "cannot reach rolecall at http://127.0.0.1:" in child.before
    assert "rolecall serve" in child.before and "Traceback" not in child.before
    assert child.exitstatus == 1


def test_wrong_key_is_a_sentence_not_a_traceback(real_url: str) -> None:
    child = _spawn("--url", real_url, "--key", "not-the-key")
    child.expect(pexpect.EOF)
    child.close()
    assert "refused the API key" in child.before and "--key" in child.before
    assert "Traceback" not in child.before and child.exitstatus == 1


def test_a_bad_card_file_is_a_sentence(real_url: str, tmp_path: Path) -> None:
    card = tmp_path / "broken.png"
    card.write_bytes(b"\x89PNG\r\n\x1a\n")
    child = _spawn("--url", real_url, "--key", API_KEY, "--character", str(card))
    child.expect(pexpect.EOF)
    child.close()
    assert "the PNG file is truncated" in child.before and child.exitstatus == 1


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_thinking_is_dimmed_on_a_terminal_and_plain_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, plain = _Tty(), io.StringIO()
    for out in (tty, plain):
        terminal = Terminal(out)
        terminal.piece("thinking", "hmm")
        terminal.piece("text", "Sit.")
    assert tty.getvalue() == "\x1b[2m(thinking) \x1b[0m\x1b[2mhmm\x1b[0m\nSit."
    assert plain.getvalue() == "(thinking) hmm\nSit."
