"""What an OpenAI-compatible server is: its kind (which decides how prompts are counted), its
context window and the model name it serves, probed once when the engine starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from rolecall.engines.upstream_errors import ReplicaFault

# llamacpp: /apply-template + /tokenize; vllm: /tokenize with chat messages; sglang and generic: a 1-token
# generation. llama.cpp, vLLM and SGLang also tell a generation's prompt count in its stream.
UpstreamKind = Literal["llamacpp", "vllm", "sglang", "generic"]

GetJson = Callable[[str], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class UpstreamProfile:
    kind: UpstreamKind
    context_window: int | None  # None: the server did not say
    vision: bool
    served_model: str | None  # the first model of /v1/models


async def probe_profile(get_json: GetJson) -> UpstreamProfile:
    """llama.cpp answers `/props` (n_ctx, modalities); vLLM lists `max_model_len` and `owned_by: vllm`
    in `/v1/models`, SGLang `owned_by: sglang`; anything else is generic. `get_json(path)` returns (status,
    parsed body)."""
    status, models = await get_json("/v1/models")
    if status != 200:
        raise ReplicaFault(f"GET /v1/models answered {status}")
    first = _first_model(models)
    served = first.get("id") if isinstance(first.get("id"), str) else None
    status, props = await get_json("/props")
    if status == 200 and isinstance(props, dict) and ("default_generation_settings" in props or "n_ctx" in props):
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        vision = bool((props.get("modalities") or {}).get("vision"))
        return UpstreamProfile("llamacpp", n_ctx if isinstance(n_ctx, int) else None, vision, served)
    max_len = first.get("max_model_len")
    context = max_len if isinstance(max_len, int) else None
    owner = first.get("owned_by")
    kind: UpstreamKind = owner if owner in ("vllm", "sglang") else "generic"
    return UpstreamProfile(kind, context, False, served)


def _first_model(models: Any) -> dict[str, Any]:
    data = models.get("data") if isinstance(models, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return {}
