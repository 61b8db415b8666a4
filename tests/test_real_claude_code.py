"""The real Claude Code CLI, installed from npm, answers a prompt through rolecall and the bundled model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEY

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.197"
OUTPUT_CAP = 256
INSTALL_DIR = Path(__file__).resolve().parents[1] / ".venv" / "claude-code"  # beside the venv, ignored by git


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    binary = INSTALL_DIR / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: Claude Code cannot be installed")
        subprocess.run(
            [npm, "install", "--prefix", str(INSTALL_DIR), "--no-audit", "--no-fund", "--silent", CLAUDE_CODE],
            check=True,
            timeout=600,
        )
    return binary


def test_claude_code_prints_an_answer(claude_bin: Path, real_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),  # a fresh profile: no login, no settings from the machine
        "ANTHROPIC_BASE_URL": real_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # The tiny model, sampling at Claude Code's defaults, may ramble until the context is full.
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(OUTPUT_CAP),
    }
    env.pop("ANTHROPIC_AUTH_TOKEN", None)
    done = subprocess.run(
        [str(claude_bin), "-p", "Say hello", "--model", "MiniMax-M2.7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    capped = f"Claude's response exceeded the {OUTPUT_CAP} output token maximum"
    if capped in done.stdout:
        return  # Claude Code read the whole stream and its stop_reason `max_tokens`: the protocol worked
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), "Claude Code printed no answer"
    assert "API Error" not in done.stdout, done.stdout
