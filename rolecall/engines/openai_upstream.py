"""An engine reached over HTTP through OpenAI's `POST /v1/chat/completions` (streaming)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson

from rolecall.core.chunks import EngineBatch
from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import EngineTimeout, RolecallError, UpstreamError
from rolecall.engines.base import EngineInfo
from rolecall.engines.openai_wire import ReplyUsage, chat_payload, prompt_payload
from rolecall.engines.upstream_errors import ReplicaFault, Unreachable, upstream_failure
from rolecall.engines.upstream_http import Origin, PoolStats, UpstreamPool
from rolecall.engines.upstream_profile import UpstreamKind, UpstreamProfile, probe_profile
from rolecall.engines.upstream_stream import ChatStreamDecoder, decoded, not_a_stream
from rolecall.parsing.upstream_sse import UpstreamSSE

_HEALTH_TIMEOUT = 2.0
# vLLM and SGLang send the response head as soon as the request is accepted: a replica that has not done
# so by then is stuck or swamped, and another one should be tried.
DEFAULT_FIRST_BYTE_TIMEOUT = 30.0
# Idle keep-alive connections kept per upstream (more may be open at once; they close when done).
DEFAULT_POOL_SIZE = 64


class OpenAIChatEngine:
    """One OpenAI-compatible server. Prompts are counted by the server itself, through the very
    template generation uses, so counts match what is served: llama.cpp `/apply-template` +
    `/tokenize`, vLLM `/tokenize` with chat messages, elsewhere a one-token generation's usage."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        upstream_model: str | None = None,
        context_window: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        first_byte_timeout: float | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # `user:pass@` in the URL becomes basic auth, so the URL rolecall keeps, logs and labels
        # metrics with (and httpx logs) holds no password.
        self.base_url, auth = _split_credentials(base_url.rstrip("/").removesuffix("/v1"))
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._first_byte_timeout = first_byte_timeout
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            auth=httpx.BasicAuth(*auth) if auth and not api_key else None,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=8),
        )
        # Generations stream over a leaner client of their own (engines/upstream_http.py).
        auth_header = f"Bearer {api_key}" if api_key else _basic(auth)
        header_lines = f"authorization: {auth_header}\r\n".encode() if auth_header else b""
        self._pool = UpstreamPool(Origin.parse(self.base_url), pool_size, connect_timeout, read_timeout, header_lines)
        # Health probes keep one connection of their own: the streaming pool's figures stay the streams'.
        self._probes = UpstreamPool(Origin.parse(self.base_url), 1, _HEALTH_TIMEOUT, _HEALTH_TIMEOUT, header_lines)
        self._model = upstream_model
        self._context = context_window
        self.kind: UpstreamKind | None = None  # known once started
        self.info = EngineInfo(context_window=context_window or 0)

    async def start(self) -> None:
        """Probe what the server is; the configured context (if any) wins over the probed one."""
        profile = await self._probe()
        context = self._context or profile.context_window
        if not context:
            raise UpstreamError(f"{self.base_url} did not report its context size; set `context` for this model")
        self.kind = profile.kind
        self._model = self._model or profile.served_model
        # Only llama.cpp shows us its rendering; vLLM and SGLang render tools with the model's own template.
        template_tools = await self._template_renders_tools() if profile.kind == "llamacpp" else True
        self.info = EngineInfo(
            context_window=context,
            vision=profile.vision,
            template_tools=template_tools,
            streams_prompt_count=profile.kind != "generic",
        )

    async def _template_renders_tools(self) -> bool:
        """Whether llama.cpp's chat template shows `tools` to the model (many small models' templates drop them)."""
        probe_tool = {"type": "function", "function": {"name": "rolecall_probe", "parameters": {"type": "object"}}}
        rendered = await self._post_json(
            "/apply-template", {"messages": [{"role": "user", "content": "?"}], "tools": [probe_tool]}
        )
        return "rolecall_probe" in str(rendered.get("prompt", ""))

    async def close(self) -> None:
        await self._probes.close()
        await self._pool.close()
        await self._client.aclose()

    @property
    def connections(self) -> PoolStats:
        """The streaming connections to this upstream: opened, reused, idle, active."""
        return self._pool.stats

    async def healthy(self) -> bool:
        """`/health` answers 200 (llama.cpp, vLLM, SGLang); servers without it (Ollama) list their models.
        Over a kept-alive connection of the lean client: a probe costs about a tenth of an httpx request."""
        try:
            status = await self._probes.get("/health", _HEALTH_TIMEOUT)
            if status == 404:
                status = await self._probes.get("/v1/models", _HEALTH_TIMEOUT)
        except (RolecallError, OSError, TimeoutError):
            return False
        return status == 200

    async def render_prompt(self, request: GenerationRequest) -> str | None:
        """llama.cpp's `/apply-template`: the very text generation feeds the model; other servers do not say."""
        if self.kind != "llamacpp":
            return None
        return str((await self._post_json("/apply-template", prompt_payload(request)))["prompt"])

    async def count_tokens(self, request: GenerationRequest) -> int:
        try:
            return await self._count_tokens(request)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ReplicaFault(f"the upstream's token count answer lacks what rolecall reads ({exc!r})") from None

    async def _count_tokens(self, request: GenerationRequest) -> int:
        if self.kind == "llamacpp":
            prompt = await self.render_prompt(request)
            tokens = await self._post_json("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})
            return len(tokens["tokens"])
        if self.kind == "vllm":
            body = {**prompt_payload(request), **_continuation(request), "model": self._model}
            body.pop("tool_choice", None), body.pop("parallel_tool_calls", None)
            return int((await self._post_json("/tokenize", body))["count"])
        # No tokenizer endpoint that renders chats (SGLang, Ollama...): the server's own usage count.
        probe = {**chat_payload(request, self._model), "max_tokens": 1, "stream": False}
        probe.pop("stream_options", None)
        return int((await self._post_json("/v1/chat/completions", probe))["usage"]["prompt_tokens"])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineBatch]:
        continuous = self.kind in ("vllm", "sglang")
        payload = chat_payload(request, self._model, llamacpp=self.kind == "llamacpp", continuous_usage=continuous)
        if self.kind == "vllm":
            payload.update(_continuation(request))
        usage = ReplyUsage(counts_end_token=self.kind == "llamacpp")
        lines, decoder = UpstreamSSE(), ChatStreamDecoder()
        body = orjson.dumps(payload)
        async with self._pool.stream("/v1/chat/completions", body, self.first_byte_timeout) as response:
            if response.status != 200:
                raise upstream_failure(response.status, await response.read_all(), response.headers.get("retry-after"))
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise await not_a_stream(response, content_type)
            # One batch per socket read: the lines it completed, the chunks they carry.
            while not decoder.done and (data := await response.read()) is not None:
                batch, failure = decoded(lines.feed(data), decoder, usage)
                if batch:
                    yield batch
                if failure is not None:
                    raise failure
            if decoder.done:
                response.ended()  # the connection is kept alive once the body's end arrives
            else:
                batch, failure = decoded(lines.flush(), decoder, usage)
                if batch:
                    yield batch
                if failure is not None:
                    raise failure
                decoder.flush()

    @property
    def first_byte_timeout(self) -> float:
        """The configured limit; unset, 30 s, but `read_timeout` for llama.cpp, whose server sends its
        response head only once the prompt is processed (a long prefill is not a stuck replica)."""
        if self._first_byte_timeout is not None:
            return self._first_byte_timeout
        return self._read_timeout if self.kind == "llamacpp" else DEFAULT_FIRST_BYTE_TIMEOUT

    def _failure(self, exc: httpx.HTTPError) -> RolecallError:
        """An httpx failure as the error a client may see (it names no URL: upstreams are internal)."""
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            wait = self._connect_timeout
            return Unreachable(f"the upstream could not be reached within {wait:g} s (connect_timeout)")
        if isinstance(exc, httpx.TimeoutException):
            return EngineTimeout("the upstream stopped sending for longer than read_timeout")
        if isinstance(exc, httpx.ConnectError):
            return Unreachable("the upstream could not be connected to (refused or unreachable)")
        return ReplicaFault(f"the connection to the upstream failed: {type(exc).__name__}")

    async def _probe(self) -> UpstreamProfile:
        async def get_json(path: str) -> tuple[int, Any]:
            response = await self._send("GET", path, None)
            try:
                return response.status_code, orjson.loads(response.content)
            except orjson.JSONDecodeError:
                return response.status_code, None

        return await probe_profile(get_json)

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("POST", path, body)
        if response.status_code != 200:
            raise upstream_failure(response.status_code, response.content, response.headers.get("retry-after"))
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            snippet = response.content[:200].decode("utf-8", "replace")
            raise ReplicaFault(f"the upstream's {path} answer is not a JSON object: {snippet!r}")
        return answer

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        try:
            content = orjson.dumps(body) if body is not None else None
            return await self._client.request(method, path, content=content)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from None


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:pass@`, and those credentials (user, password)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def _basic(auth: tuple[str, str] | None) -> str | None:
    """An HTTP basic authorization value."""
    if auth is None:
        return None
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")


def _continuation(request: GenerationRequest) -> dict[str, bool]:
    """vLLM continues a final assistant turn (prefill) only when asked to."""
    if request.prefill:
        return {"add_generation_prompt": False, "continue_final_message": True}
    return {"add_generation_prompt": True}
