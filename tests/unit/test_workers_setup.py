"""What the parent of `--workers` hands each worker on its stdin arrives whole: the settings as the parent read
them (flags, environment and file already merged), and the shared part (secret, engine endpoints)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from rolecall.cli.serve import load_settings, register
from rolecall.cli.workers import worker_settings, worker_setup
from rolecall.service.workers.share import WorkerShare
from rolecall.settings import ModelConfig, Settings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_workers_come_from_the_flag_the_environment_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(_parse()).workers == 1
    assert load_settings(_parse("--workers", "3")).workers == 3
    monkeypatch.setenv("ROLECALL_WORKERS", "2")
    assert load_settings(_parse()).workers == 2
    config = tmp_path / "rolecall.toml"
    config.write_text("workers = 4\n")
    monkeypatch.delenv("ROLECALL_WORKERS")
    assert load_settings(_parse("--config", str(config))).workers == 4
    with pytest.raises(ValidationError):
        Settings(workers=0)


def test_a_worker_reads_the_settings_the_parent_read(tmp_path: Path) -> None:
    fixed = ModelConfig(id="gpu", engine="openai", upstreams=["http://a:8000", "http://b:8000"], context=4096)
    probed = ModelConfig(id="other", engine="openai", upstreams=["http://c:8000"])
    settings = Settings(
        workers=2, api_keys=["k1", "k2"], data_dir=tmp_path, models=[fixed, probed], queue_wait=7.5, max_in_flight=3
    )
    again = worker_settings(json.loads(json.dumps(_sent(settings))))
    assert again == settings
    assert again.models[0].context_configured, "a context set in the file stays set"
    assert not again.models[1].context_configured, "a context left unset is still probed from the upstream"
    bundled = load_settings(_parse("--workers", "2"))
    assert worker_settings(json.loads(json.dumps(_sent(bundled)))) == bundled


def test_what_the_environment_and_the_file_set_reaches_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rolecall.toml"
    config.write_text('workers = 2\n[[models]]\nid = "gpu"\nengine = "openai"\nupstreams = ["http://a:8000"]\n')
    monkeypatch.setenv("ROLECALL_QUEUE_WAIT", "3.5")
    monkeypatch.setenv("ROLECALL_CONFIG", str(config))
    settings = load_settings(_parse())
    config.write_text("this file changed after the parent read it")  # the worker does not read it again
    again = worker_settings(json.loads(json.dumps(_sent(settings))))
    assert (again.queue_wait, [m.id for m in again.models], again.models[0].context_configured) == (3.5, ["gpu"], False)


def _sent(settings: Settings) -> dict:
    """The settings as cli/workers.py writes them to a worker's stdin."""
    share = WorkerShare(0, Path("/nonexistent"), b"\x00" * 32)
    settings_part: dict = worker_setup(settings, share, 1, 3)["settings"]
    return settings_part


def test_the_shared_part_travels_whole(tmp_path: Path) -> None:
    share = WorkerShare(2, tmp_path / "coordinator.sock", b"\x01" * 32, {"m": ("http://127.0.0.1:4242", "key")})
    again = WorkerShare.from_wire(json.loads(json.dumps(share.to_wire())))
    assert (again.number, again.coordinator, again.secret, again.embedded) == (
        2,
        tmp_path / "coordinator.sock",
        b"\x01" * 32,
        {"m": ("http://127.0.0.1:4242", "key")},
    )
