"""`rolecall bench --compare embedded` picks the embedded model rolecall would serve the benchmarked name with."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolecall.cli.bench_engine import embedded_model

TWO = """
[[models]]
id = "upstream"
aliases = ["claude-*"]
engine = "openai"
upstreams = ["http://gpu:8000"]

[[models]]
id = "small"
aliases = ["MiniMax-M2.7"]
threads = 1

[[models]]
id = "large"
aliases = ["MiniMax-M2.5", "qwen-*"]
gguf = "/models/large.gguf"
context = 32768
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    path = tmp_path / "rolecall.toml"
    path.write_text(TWO)
    return str(path)


@pytest.mark.parametrize(
    ("name", "expected"), [("MiniMax-M2.7", "small"), ("large", "large"), ("qwen-32b", "large"), ("other", "small")]
)
def test_the_model_serving_the_name_else_the_first_embedded_one(config: str, name: str, expected: str) -> None:
    assert embedded_model(config, name).id == expected


def test_the_default_is_the_bundled_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    model = embedded_model(None, "MiniMax-M2.7")
    assert (model.gguf, model.engine) == ("bundled", "llamacpp")


def test_no_embedded_model_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.toml"
    path.write_text('[[models]]\nid = "up"\nengine = "openai"\nupstreams = ["http://gpu:8000"]\n')
    with pytest.raises(ValueError, match='needs a model with engine = "llamacpp"'):
        embedded_model(str(path), "up")
