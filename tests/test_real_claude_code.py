"""The real Claude Code CLI answers through rolecall and the bundled model, run exactly as the README
shows it: no CLAUDE_CODE_MAX_OUTPUT_TOKENS or other extra variables, three times in a row.

Claude Code asks for max_tokens 32000 with a ~3k-token prompt and no temperature, and sends its agent and
skill lists as a system message after the user's words; what keeps the 135M model's answers short is that
note riding ahead of the user's words (shaping/notes.py) and the bundled model's output settings (a cap,
greedy decoding with a repetition penalty). `make install` installs the pinned Claude Code into
.venv/claude-code."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.settings import Settings, default_models
from tests.conftest import API_KEY
from tests.support.server import running_server

CLAUDE_BIN = Path(__file__).resolve().parents[1] / ".venv" / "claude-code" / "node_modules" / ".bin" / "claude"
# Seconds per run: the README promises an answer within a minute on 2 cores. A bound, not a timing assertion:
# what it tells apart is an answer from a ramble to the output cap and Claude Code's retries after it (minutes).
ANSWER_TIMEOUT = 60
RUNS = 3


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    if not CLAUDE_BIN.exists():
        pytest.skip("Claude Code is not installed: `make install` installs it with npm (was npm missing?)")
    return CLAUDE_BIN


@pytest.fixture(scope="module")
def bundled_url(data_dir: Path) -> Iterator[str]:
    """The bundled model exactly as served without a config file: its output settings and thread default."""
    settings = Settings(api_keys=[API_KEY], data_dir=data_dir, models=default_models())
    with running_server(settings) as url:
        yield url


def test_claude_code_answers_through_rolecall(claude_bin: Path, bundled_url: str, tmp_path: Path) -> None:
    """The README's command, as written, three times in a row: each run answers (exit 0, text on stdout)."""
    env = {
        **os.environ,
        "HOME": str(tmp_path),  # a fresh profile: no login, no settings from the machine
        "ANTHROPIC_BASE_URL": bundled_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL", "CLAUDE_CODE_MAX_OUTPUT_TOKENS"):
        env.pop(name, None)
    for run in range(1, RUNS + 1):
        try:
            done = subprocess.run(
                [str(claude_bin), "-p", "Say hello", "--model", "MiniMax-M2.7"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=ANSWER_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"run {run}: Claude Code printed no answer within {ANSWER_TIMEOUT} s: {exc.stdout!r}")
        assert done.returncode == 0, f"run {run}: {done.stdout}{done.stderr}"
        assert done.stdout.strip(), f"run {run}: Claude Code printed no answer"
        assert "API Error" not in done.stdout, f"run {run}: {done.stdout}"
