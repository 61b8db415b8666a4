"""Shared fixtures: one real server with the bundled model for the session, and scripted-engine servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import SEED_MODEL_NAMES, ModelConfig, Settings
from tests.support.server import running_server

API_KEY = "test-key"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Servers under test keep their state (the signing secret) here, never in the user's home."""
    return tmp_path_factory.mktemp("rolecall-data")


@pytest.fixture(scope="session")
def real_url(data_dir: Path) -> Iterator[str]:
    """The bundled SmolLM2 model behind the real server, with one API key configured."""
    settings = Settings(
        api_keys=[API_KEY],
        data_dir=data_dir,
        # As served by default (settings.default_models), but on one llama.cpp thread: its threads spin-wait,
        # and on a busy 2-core CI host two of them starve the server and the test client (seconds per token).
        models=[
            ModelConfig(
                id="smollm2-135m-instruct",
                aliases=SEED_MODEL_NAMES,
                context=8192,
                parallel=4,
                prompted_tools="forced",
                threads=1,
            )
        ],
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="session")
def real_client(real_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=real_url, api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def real_openai(real_url: str) -> openai.OpenAI:
    """The official `openai` SDK against the real server (base URL `…/v1`, as users configure it)."""
    return openai.OpenAI(base_url=real_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def real_http(real_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=real_url, headers={"x-api-key": API_KEY}, timeout=120) as client:
        yield client


@pytest.fixture
def scripted() -> ScriptedEngine:
    return ScriptedEngine(context_window=4096)


@pytest.fixture
def scripted_url(scripted: ScriptedEngine, data_dir: Path) -> Iterator[str]:
    """A server whose models (`scripted`, alias `MiniMax-M2.7`, and variants with other output settings) are the
    scripted engine; no auth, fast pings."""
    created = "2024-11-01T00:00:00Z"
    registry = ModelRegistry(
        [
            ServedModel(
                id="scripted",
                engine=scripted,
                display_name="Scripted",
                created_at=created,
                aliases=["MiniMax-M2.7", "claude-*"],
            ),
            # The same engine behind other per-model output settings (reasoning format, tool-call markup).
            ServedModel(
                id="scripted-r1",
                engine=scripted,
                display_name="Tags",
                created_at=created,
                reasoning="tags",
                tool_parser="minimax_m2",
            ),
            ServedModel(
                id="scripted-hermes",
                engine=scripted,
                display_name="Hermes",
                created_at=created,
                reasoning="field",
                tool_parser="hermes",
            ),
            ServedModel(
                id="scripted-plain", engine=scripted, display_name="Plain", created_at=created, reasoning="none"
            ),
        ]
    )
    with running_server(Settings(ping_interval=0.2, data_dir=data_dir), registry=registry) as url:
        yield url
