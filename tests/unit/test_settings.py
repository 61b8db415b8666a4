"""settings.Settings (CLI > ROLECALL_* env > TOML > defaults) and the `rolecall serve` refusal rules."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from rolecall import cli
from rolecall.cli import serve
from rolecall.settings import SEED_MODEL_NAMES, ModelConfig, Settings

TOML = """
port = 9000
ping_interval = 3.5
api_keys = ["from-file"]

[[models]]
id = "qwen3-8b"
aliases = ["MiniMax-M2.7", "claude-*"]
engine = "scripted"
gguf = "/models/qwen3-8b.gguf"
context = 32768
parallel = 2

[[models]]
id = "tiny"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ROLECALL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "rolecall.toml"
    path.write_text(TOML)
    return path


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.api_keys, settings.ping_interval) == ("127.0.0.1", 8000, [], 10.0)
    assert SEED_MODEL_NAMES == ["MiniMax-M2.7", "MiniMax-M2.7-highspeed", "MiniMax-M2.5", "MiniMax-M2.1"]
    (model,) = settings.models
    assert model.aliases == [*SEED_MODEL_NAMES, "claude-*"]  # Claude Code and SillyTavern send claude-* names
    assert model.engine == "llamacpp" and model.gguf == "bundled"
    assert settings.loopback_only


@pytest.mark.parametrize(
    ("value", "keys"),
    [("a, b", ["a", "b"]), ("a", ["a"]), (" a ,, b ,", ["a", "b"]), ("", []), ("k1,k2,k3", ["k1", "k2", "k3"])],
)
def test_api_keys_from_env(monkeypatch: pytest.MonkeyPatch, value: str, keys: list[str]) -> None:
    monkeypatch.setenv("ROLECALL_API_KEYS", value)
    assert Settings().api_keys == keys


def test_toml_file(config_file: Path) -> None:
    settings = Settings(config=config_file)
    assert settings.port == 9000 and settings.ping_interval == 3.5 and settings.api_keys == ["from-file"]
    assert settings.models == [
        ModelConfig(
            id="qwen3-8b",
            aliases=["MiniMax-M2.7", "claude-*"],
            engine="scripted",
            gguf="/models/qwen3-8b.gguf",
            context=32768,
            parallel=2,
        ),
        ModelConfig(id="tiny"),
    ]


def test_toml_file_named_by_env(monkeypatch: pytest.MonkeyPatch, config_file: Path) -> None:
    monkeypatch.setenv("ROLECALL_CONFIG", str(config_file))
    assert Settings().port == 9000


def test_env_overrides_toml(monkeypatch: pytest.MonkeyPatch, config_file: Path) -> None:
    monkeypatch.setenv("ROLECALL_PORT", "9100")
    monkeypatch.setenv("ROLECALL_API_KEYS", "env-key")
    settings = Settings(config=config_file)
    assert settings.port == 9100 and settings.api_keys == ["env-key"]
    assert settings.ping_interval == 3.5  # not overridden: still from the file


def test_init_kwargs_override_env(monkeypatch: pytest.MonkeyPatch, config_file: Path) -> None:
    monkeypatch.setenv("ROLECALL_PORT", "9100")
    monkeypatch.setenv("ROLECALL_HOST", "10.0.0.1")
    settings = Settings(config=config_file, port=9200)
    assert settings.port == 9200 and settings.host == "10.0.0.1"


@pytest.mark.parametrize(
    "toml",
    [
        '[[models]]\nid = "x"\nbogus = 1\n',
        '[[models]]\nid = "x"\nengine = "vllm"\n',
        '[[models]]\nid = "x"\ncontext = 10\n',
        '[[models]]\nid = "x"\nparallel = 0\n',
        "port = 70000\n",
    ],
)
def test_invalid_config_rejected(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError):
        Settings(config=path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_only(host: str, loopback: bool) -> None:
    assert Settings(host=host).loopback_only is loopback


# --- `rolecall serve` -----------------------------------------------------------------------------------------------


def _parse_serve(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list:
    """Stub out the app and uvicorn so `run` goes as far as serving, then stops."""
    served: list = []
    monkeypatch.setattr(serve, "create_app", lambda settings: settings)
    monkeypatch.setattr(serve, "serve_forever", lambda app, settings: served.append((app, settings)))
    level = logging.getLogger("rolecall").level
    yield served
    logging.getLogger("rolecall").setLevel(level)


def test_public_host_without_keys_is_refused(capsys: pytest.CaptureFixture, no_serving: list) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in capsys.readouterr().err
    assert no_serving == []


def test_public_host_with_env_keys_is_allowed(monkeypatch: pytest.MonkeyPatch, no_serving: list) -> None:
    monkeypatch.setenv("ROLECALL_API_KEYS", "a, b")
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "8123"]) == 0
    ((settings, served_with),) = no_serving
    assert settings.api_keys == ["a", "b"] and served_with.host == "0.0.0.0" and served_with.port == 8123


def test_public_host_with_flag_keys_is_allowed(no_serving: list) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "--api-key", "k1", "--api-key", "k2"]) == 0
    assert no_serving[0][0].api_keys == ["k1", "k2"]


def test_loopback_without_keys_is_allowed(no_serving: list) -> None:
    assert cli.main(["serve"]) == 0
    ((settings, served_with),) = no_serving
    assert settings.api_keys == [] and served_with.host == "127.0.0.1"


def test_load_settings_flags_override_env_and_file(monkeypatch: pytest.MonkeyPatch, config_file: Path) -> None:
    monkeypatch.setenv("ROLECALL_PORT", "9100")
    settings = serve.load_settings(
        _parse_serve(["--config", str(config_file), "--port", "9300", "--host", "localhost"])
    )
    assert (settings.port, settings.host, settings.ping_interval) == (9300, "localhost", 3.5)
    assert settings.loopback_only and settings.api_keys == ["from-file"]


def test_load_settings_model_flag_replaces_the_first_gguf(config_file: Path) -> None:
    settings = serve.load_settings(_parse_serve(["--config", str(config_file), "--model", "/x/other.gguf"]))
    assert [m.gguf for m in settings.models] == ["/x/other.gguf", "bundled"]
    assert settings.models[0].id == "qwen3-8b"  # the configured name stays


def test_model_flag_without_config_serves_the_file_under_its_own_name() -> None:
    (model,) = serve.load_settings(_parse_serve(["--model", "/models/Qwen3-0.6B-Q8_0.gguf"])).models
    assert (model.id, model.gguf) == ("Qwen3-0.6B-Q8_0", "/models/Qwen3-0.6B-Q8_0.gguf")
    assert model.display_name is None  # not the bundled model's "SmolLM2 135M Instruct"
    assert model.aliases == [*SEED_MODEL_NAMES, "claude-*"]  # MiniMax's names still reach it


@pytest.mark.parametrize(
    ("models", "shared"),
    [
        (
            '[[models]]\nid = "a"\naliases = ["MiniMax-M2.7"]\n[[models]]\nid = "b"\naliases = ["MiniMax-M2.7"]\n',
            "MiniMax-M2.7",
        ),
        ('[[models]]\nid = "a"\n[[models]]\nid = "b"\naliases = ["a"]\n', "a"),
        ('[[models]]\nid = "a"\n[[models]]\nid = "a"\n', "a"),
        ('[[models]]\nid = "a"\naliases = ["claude-*"]\n[[models]]\nid = "b"\naliases = ["claude-*"]\n', "claude-*"),
    ],
    ids=["alias", "alias-is-an-id", "id", "glob"],
)
def test_a_name_shared_by_two_models_is_refused_naming_both(tmp_path: Path, models: str, shared: str) -> None:
    path = tmp_path / "rolecall.toml"
    path.write_text(models)
    with pytest.raises(ValueError, match=f'models "a" and "(a|b)" both answer to "{re.escape(shared)}"'):
        Settings(config=path)


def test_one_model_may_repeat_its_own_name() -> None:
    (model,) = Settings(models=[ModelConfig(id="a", aliases=["a", "b", "b"])]).models
    assert model.id == "a"


def test_toml_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture, no_serving: list) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('port = 8000\n[[models]\nid = "x"\n')
    assert cli.main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"config file {path} is not valid TOML" in err and "line 2" in err
    assert cli.main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert f"config file {tmp_path / 'missing.toml'} cannot be read" in capsys.readouterr().err
    path.write_text('[[models]]\nid = "x"\nparallel = 0\n')
    assert cli.main(["serve", "--config", str(path)]) == 2
    assert f"invalid configuration (config file {path})" in capsys.readouterr().err
    assert no_serving == []


def test_invalid_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, no_serving: list) -> None:
    assert cli.main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "invalid configuration" in capsys.readouterr().err
