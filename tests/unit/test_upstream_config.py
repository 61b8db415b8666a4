"""`engine = "openai"` configuration: the issue's TOML, its validation, the start-up replica table,
and the conversation key that affinity hashes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from rolecall import cli
from rolecall.cli import serve
from rolecall.core.conversation import GenerationRequest, ToolCall, ToolSpec, Turn
from rolecall.engines.affinity import AffinityTable, conversation_key
from rolecall.engines.upstream_errors import upstream_failure
from rolecall.settings import Settings

TOML = """
[[models]]
id = "minimax-m2"
aliases = ["MiniMax-M2.7"]
engine = "openai"
upstreams = ["http://gpu-a:8000", "http://gpu-b:8000/v1"]
upstream_model = "MiniMaxAI/MiniMax-M2.7"
api_key_env = "UPSTREAM_KEY"
read_timeout = 120
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ROLECALL_") or name == "UPSTREAM_KEY":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rolecall.toml"
    path.write_text(text)
    return path


def test_the_issue_example_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (model,) = Settings(config=write(tmp_path, TOML)).models
    assert model.engine == "openai" and model.upstreams == ["http://gpu-a:8000", "http://gpu-b:8000/v1"]
    assert model.upstream_model == "MiniMaxAI/MiniMax-M2.7" and model.read_timeout == 120
    assert not model.context_configured  # probed from the upstreams
    assert model.upstream_api_key() is None  # optional: unset, no key is sent
    monkeypatch.setenv("UPSTREAM_KEY", "sk-up")
    assert model.upstream_api_key() == "sk-up"


@pytest.mark.parametrize(
    "body",
    [
        'engine = "openai"\n',  # no upstreams
        'engine = "openai"\nupstreams = ["gpu-a:8000"]\n',  # not a URL
        'engine = "openai"\nupstreams = ["http://a:1", "http://a:1"]\n',  # listed twice
        'upstreams = ["http://a:1"]\n',  # upstreams on the embedded engine
        'engine = "openai"\nupstreams = ["http://a:1"]\nconnect_timeout = 0\n',
    ],
)
def test_invalid_openai_config_rejected(tmp_path: Path, body: str) -> None:
    with pytest.raises(ValueError):
        Settings(config=write(tmp_path, f'[[models]]\nid = "x"\n{body}'))


def test_serve_warns_about_an_unset_key_variable_and_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`api_key_env` is optional, as documented: unset, rolecall says so and sends no key."""
    served: list = []
    monkeypatch.setattr(serve, "create_app", lambda settings: settings)
    monkeypatch.setattr(serve, "serve_forever", lambda app, *args, **kwargs: served.append(app))
    level = logging.getLogger("rolecall").level
    try:
        with caplog.at_level(logging.WARNING, logger="rolecall"):
            assert cli.main(["serve", "--config", str(write(tmp_path, TOML))]) == 0
    finally:
        logging.getLogger("rolecall").setLevel(level)
    assert len(served) == 1
    assert "$UPSTREAM_KEY (api_key_env) is not set; its upstreams get no API key" in caplog.text


def test_start_up_prints_the_replica_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(config=write(tmp_path, TOML))
    with caplog.at_level(logging.INFO, logger="rolecall"):
        serve._announce(settings)
    text = caplog.text
    assert "openai -> MiniMaxAI/MiniMax-M2.7, context probed" in text
    assert "1   http://gpu-a:8000" in text and "2   http://gpu-b:8000/v1" in text
    assert "key from $UPSTREAM_KEY" in text


SYSTEM = Turn("system", "You are terse.")
FIRST = Turn("user", "Plan a trip.")


def request(*turns: Turn, tools: tuple[ToolSpec, ...] = ()) -> GenerationRequest:
    return GenerationRequest(turns=turns, max_tokens=16, tools=tools)


def test_follow_ups_keep_the_conversation_key() -> None:
    opening = conversation_key(request(SYSTEM, FIRST))
    call = ToolCall("toolu_1", "search", '{"q": "x"}')
    answer = Turn("assistant", "Sure.", "thinking...", (call,))
    longer = request(SYSTEM, FIRST, answer, Turn("tool", "found", tool_call_id="toolu_1"), Turn("user", "More."))
    assert conversation_key(longer) == opening


@pytest.mark.parametrize(
    "other",
    [
        request(Turn("system", "You are verbose."), FIRST),
        request(SYSTEM, Turn("user", "Plan a party.")),
        request(FIRST),
        request(SYSTEM, FIRST, tools=(ToolSpec("search", "", {}),)),
    ],
)
def test_other_openings_are_other_conversations(other: GenerationRequest) -> None:
    assert conversation_key(other) != conversation_key(request(SYSTEM, FIRST))


def test_affinity_table_forgets_the_least_recently_used() -> None:
    table = AffinityTable(capacity=2)
    table.bind("a", "http://r1")
    table.bind("b", "http://r2")
    assert table.home("a") == "http://r1"  # touched: "b" is now the oldest
    table.bind("c", "http://r1")
    assert (table.home("a"), table.home("b"), table.home("c"), len(table)) == ("http://r1", None, "http://r1", 2)


def test_an_upstream_refusing_the_key_says_where_the_key_comes_from() -> None:
    error = upstream_failure(401, b'{"error": {"message": "Invalid API Key", "type": "authentication_error"}}')
    assert error.message.startswith("engine error 401: Invalid API Key")
    assert "api_key_env" in error.message
