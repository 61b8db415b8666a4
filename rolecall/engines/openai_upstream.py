"""An engine reached over HTTP through OpenAI's `POST /v1/chat/completions` (streaming)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from rolecall.engines.base import EngineChunk, EngineInfo
from rolecall.engines.openai_wire import chat_payload, decode_chunk, prompt_payload
from rolecall.protocol.errors import EngineTimeout, InvalidRequest, Overloaded, PromptTooLong, UpstreamError
from rolecall.shaping.conversation import GenerationRequest


class OpenAIChatEngine:
    """One OpenAI-compatible server. Token counting uses llama.cpp's `/apply-template` + `/tokenize`,
    which renders through the very template generation uses, so the counts match exactly."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        upstream_model: str | None = None,
        context_window: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/").removesuffix("/v1"),
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._model = upstream_model
        self.info = EngineInfo(context_window=context_window or 0)

    async def start(self) -> None:
        if not self.info.context_window:
            props = await self._get_json("/props")
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if not isinstance(n_ctx, int):
                raise UpstreamError("engine did not report its context size (/props n_ctx)")
            modalities = props.get("modalities") or {}
            self.info = EngineInfo(
                context_window=n_ctx,
                vision=bool(modalities.get("vision")),
                template_tools=await self._template_renders_tools(),
            )

    async def _template_renders_tools(self) -> bool:
        """Whether llama.cpp's chat template shows `tools` to the model (many small models' templates drop them)."""
        probe_tool = {"type": "function", "function": {"name": "rolecall_probe", "parameters": {"type": "object"}}}
        rendered = await self._post_json(
            "/apply-template", {"messages": [{"role": "user", "content": "?"}], "tools": [probe_tool]}
        )
        return "rolecall_probe" in str(rendered.get("prompt", ""))

    async def close(self) -> None:
        await self._client.aclose()

    async def healthy(self) -> bool:
        try:
            response = await self._client.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def count_tokens(self, request: GenerationRequest) -> int:
        rendered = await self._post_json("/apply-template", prompt_payload(request))
        tokens = await self._post_json(
            "/tokenize", {"content": rendered["prompt"], "add_special": True, "parse_special": True}
        )
        return len(tokens["tokens"])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineChunk]:
        payload = chat_payload(request, self._model)
        try:
            async with self._client.stream("POST", "/v1/chat/completions", content=orjson.dumps(payload)) as response:
                if response.status_code != 200:
                    raise _upstream_failure(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = orjson.loads(data)
                    if "error" in chunk:
                        raise UpstreamError(_error_message(chunk))
                    for item in decode_chunk(chunk):
                        yield item
        except httpx.TimeoutException:
            raise EngineTimeout("the engine did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"engine connection failed: {type(exc).__name__}") from None

    async def _get_json(self, path: str) -> dict[str, Any]:
        return await self._call("GET", path, None)

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, body)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            content = orjson.dumps(body) if body is not None else None
            response = await self._client.request(method, path, content=content)
        except httpx.TimeoutException:
            raise EngineTimeout("the engine did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"engine connection failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise _upstream_failure(response.status_code, response.content)
        return orjson.loads(response.content)


def _error_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body)


def _upstream_failure(status: int, raw: bytes) -> Exception:
    """An engine's HTTP error as the error a client should see."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = {"error": {"message": raw.decode("utf-8", "replace")[:500]}}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        return PromptTooLong(int(error.get("n_prompt_tokens", 0)), int(error.get("n_ctx", 1)) - 1)
    message = _error_message(body)
    if status in (429, 503):
        return Overloaded("Overloaded", retry_after=1)
    if status == 400:
        return InvalidRequest(message)
    return UpstreamError(f"engine error {status}: {message}")
