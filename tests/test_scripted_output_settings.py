"""A model's configured output settings (ModelConfig.max_output_tokens and .sampling): the cap lowers a
request's max_tokens and is reported honestly; each sampling default fills only what the client left out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rolecall.core.conversation import GenerationRequest, OutputSettings, Sampling, Turn
from rolecall.engines.fake import ScriptedEngine
from rolecall.engines.openai_wire import chat_payload
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import ModelConfig, Settings, default_models
from tests.support.server import running_server
from tests.support.sse import check_stream


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine(context_window=4096)


@pytest.fixture(scope="module")
def url(engine: ScriptedEngine, data_dir: Path) -> Iterator[str]:
    """One scripted engine behind two models: `scripted` without output settings, `scripted-capped` with a
    3-token cap and sampling defaults."""
    created = "2024-11-01T00:00:00Z"
    defaults = OutputSettings(3, Sampling(temperature=0.2, top_p=0.9, repeat_penalty=1.15))
    registry = ModelRegistry(
        [
            ServedModel(id="scripted", engine=engine, display_name="Plain", created_at=created),
            ServedModel(
                id="scripted-capped", engine=engine, display_name="Capped", created_at=created, output=defaults
            ),
        ]
    )
    with running_server(Settings(data_dir=data_dir), registry=registry) as base:
        yield base


LONG_ASK = {"model": "scripted-capped", "max_tokens": 32000, "messages": [{"role": "user", "content": "Say hello"}]}


def test_the_cap_cuts_and_says_max_tokens(engine: ScriptedEngine, url: str) -> None:
    body = httpx.post(url + "/v1/messages", json=LONG_ASK).json()
    assert engine.requests[-1].max_tokens == 3
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 3
    assert body["content"][0]["text"] == "Hello from the"
    events = check_stream(httpx.post(url + "/v1/messages", json={**LONG_ASK, "stream": True}).content)
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


def test_a_request_below_the_cap_is_untouched(engine: ScriptedEngine, url: str) -> None:
    body = httpx.post(url + "/v1/messages", json={**LONG_ASK, "max_tokens": 2}).json()
    assert engine.requests[-1].max_tokens == 2 and body["stop_reason"] == "max_tokens"


def test_sampling_defaults_fill_only_what_the_client_left_out(engine: ScriptedEngine, url: str) -> None:
    httpx.post(url + "/v1/messages", json=LONG_ASK)
    assert engine.requests[-1].sampling == Sampling(temperature=0.2, top_p=0.9, repeat_penalty=1.15)
    httpx.post(url + "/v1/messages", json={**LONG_ASK, "temperature": 1, "top_k": 5})
    assert engine.requests[-1].sampling == Sampling(temperature=1, top_p=0.9, top_k=5, repeat_penalty=1.15)
    # A model without output settings sends the engine exactly what the client sent.
    httpx.post(url + "/v1/messages", json={**LONG_ASK, "model": "scripted"})
    assert engine.requests[-1].sampling == Sampling() and engine.requests[-1].max_tokens < 32000


def test_fit_keeps_the_tighter_of_cap_and_context_room() -> None:
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=1000)
    assert OutputSettings(512).fit(request, room=300).max_tokens == 300
    assert OutputSettings(512).fit(request, room=4000).max_tokens == 512
    assert OutputSettings().fit(request, room=4000) is request


def test_repeat_penalty_goes_to_llamacpp_by_its_name_and_to_others_as_repetition_penalty() -> None:
    request = GenerationRequest(turns=(Turn("user", "hi"),), max_tokens=8, sampling=Sampling(repeat_penalty=1.15))
    to_llamacpp = chat_payload(request, "m", llamacpp=True)
    assert to_llamacpp["repeat_penalty"] == 1.15 and "temperature" not in to_llamacpp
    to_vllm = chat_payload(request, "m")
    assert to_vllm["repetition_penalty"] == 1.15 and "repeat_penalty" not in to_vllm


def test_the_bundled_model_ships_output_settings_and_a_config_can_set_them() -> None:
    (bundled,) = default_models()
    assert bundled.max_output_tokens and bundled.sampling.temperature is not None
    assert bundled.sampling.repeat_penalty and bundled.sampling.repeat_penalty > 1
    config = ModelConfig.model_validate(
        {"id": "m", "max_output_tokens": 64, "sampling": {"temperature": 0.7, "top_k": 20, "repeat_penalty": 1.1}}
    )
    assert config.sampling.top_k == 20 and config.max_output_tokens == 64
