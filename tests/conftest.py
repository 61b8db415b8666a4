"""Shared fixtures: one real server with the bundled model for the session, and scripted-engine servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from rolecall.engines.fake import ScriptedEngine
from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.runtime import build_registry
from rolecall.settings import Settings, default_models
from rolecall.store.database import database_url
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.server import running_server
from tests.support.upstream import ScriptedUpstream, serving
from tests.support.waiting import wait_until

API_KEY = "test-key"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Servers under test keep their state (the signing secret) here, never in the user's home."""
    return tmp_path_factory.mktemp("rolecall-data")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    """One scripted OpenAI-compatible upstream per test module (tests script its answers): the app, its URL."""
    app = ScriptedUpstream()
    with serving(app) as url:
        yield app, url


@pytest.fixture(scope="session")
def real_server(data_dir: Path) -> Iterator[tuple[str, EmbeddedLlamaCpp]]:
    """The bundled SmolLM2 model behind the real server, with one API key configured; its URL and engine."""
    settings = Settings(
        api_keys=[API_KEY],
        data_dir=data_dir,
        # Exactly the default model (settings.default_models), but on one llama.cpp thread: its threads spin-wait,
        # and on a busy 2-core CI host two of them starve the server and the test client (seconds per token).
        models=[model.model_copy(update={"threads": 1}) for model in default_models()],
    )
    registry = build_registry(settings.models)
    engine = registry.models[0].engine
    assert isinstance(engine, EmbeddedLlamaCpp)
    with running_server(settings, registry=registry) as url:
        yield url, engine


@pytest.fixture(scope="session")
def real_url(real_server: tuple[str, EmbeddedLlamaCpp]) -> str:
    return real_server[0]


@pytest.fixture(scope="session")
def settle(real_server: tuple[str, EmbeddedLlamaCpp]) -> Callable[[], None]:
    """Wait until every llama.cpp slot of the real server is idle, before the next greedy run.

    llama.cpp sends a request's last chunk a moment before it frees the slot (and a request cut short by
    a stop sequence or a disconnect holds its slot until the engine notices, one token later). A request
    arriving in that gap lands in another slot, at other cells of the unified KV cache, and llama.cpp's
    CPU kernels are not invariant to that layout: greedy decoding can then pick a different near-tie
    token. Comparisons of greedy texts therefore run each request on an idle engine, read from the
    engine's own `/slots` (on its private loopback port, behind its random key).
    """
    url, key = real_server[1].endpoint

    def idle() -> bool:
        slots = httpx.get(url + "/slots", headers={"authorization": f"Bearer {key}"}, timeout=10).json()
        return not any(slot["is_processing"] for slot in slots)

    def wait_idle() -> None:
        assert wait_until(idle, timeout=120.0, interval=0.01), "llama.cpp's slots stayed busy for 120 s"

    return wait_idle


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (tests/support/postgres.py)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A database of its own for each test module that asks for one."""
    name = "t_" + request.module.__name__.rsplit(".", 1)[-1].lower()
    return postgres.create_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store on each backend: a new SQLite file (in a folder not made yet), or the module's PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(None, tmp_path / "state")
    return request.getfixturevalue("postgres_url")
