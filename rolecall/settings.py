"""All configuration in one pydantic-settings model: CLI flags > ROLECALL_* environment > TOML file > defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


def public_url(url: str) -> str:
    """`url` with `user:pass@` shown as `***@`, fit for the start-up table (the engine sends them as basic
    auth and keeps the URL without them)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


SEED_MODEL_NAMES = ["MiniMax-M2.7", "MiniMax-M2.7-highspeed", "MiniMax-M2.5", "MiniMax-M2.1"]


class SamplingDefaults(BaseModel):
    """`[models.sampling]`: what the model samples with when a request leaves a parameter out."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repeat_penalty: float | None = Field(None, gt=0)  # llama.cpp's; vLLM and SGLang get it as repetition_penalty


class ModelConfig(BaseModel):
    """One served model: `[[models]]` in the config file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    aliases: list[str] = []
    engine: Literal["llamacpp", "openai", "scripted"] = "llamacpp"
    display_name: str | None = None
    gguf: str = "bundled"
    context: int = Field(8192, ge=256)  # total tokens, shared by the slots; probed for `openai` unless set
    parallel: int = Field(4, ge=1, le=256)  # concurrent sequences (continuous batching)
    threads: int | None = Field(None, ge=1)
    # Where the model's reasoning arrives: the engine's reasoning field, inline <think> tags, or both (auto).
    reasoning: Literal["auto", "field", "tags", "none"] = "auto"
    # Tool-call markup the engine leaves in its text (when it does not parse calls itself).
    tool_parser: Literal["hermes", "minimax_m2"] | None = None
    # For a chat template without tool support: write the tool signatures into the prompt for every request
    # with tools, only when tool_choice forces a call, or never.
    prompted_tools: Literal["always", "forced", "never"] = "always"
    # Output settings: a cap on output tokens below the client's `max_tokens` (reported as stop_reason
    # max_tokens when it cuts), and sampling defaults for parameters a request leaves out.
    max_output_tokens: int | None = Field(None, ge=1)
    sampling: SamplingDefaults = Field(default_factory=SamplingDefaults)

    # engine = "openai": OpenAI-compatible servers (vLLM, SGLang, llama-server), one per replica.
    upstreams: list[str] = []  # base URLs; a trailing "/v1" is optional
    upstream_model: str | None = None  # the name sent upstream (default: the first of its /v1/models)
    api_key_env: str | None = None  # environment variable holding the upstreams' API key
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(600.0, gt=0)  # longest silence between two chunks of a stream
    # From sending a request to the upstream's response head. Unset: 30 s, except for llama.cpp servers,
    # which send their head only once the prompt is processed (queueing and prefill): read_timeout there.
    first_byte_timeout: float | None = Field(None, gt=0)
    health_interval: float = Field(5.0, gt=0)  # seconds between active health probes of the replicas
    # Kept-alive streaming connections per upstream, waiting for the next generation (more may be open while
    # generations run; those close when done). /metrics: rolecall_upstream_connections_{opened,idle}.
    pool_size: int = Field(64, ge=0)

    @field_validator("upstreams")
    @classmethod
    def _check_upstreams(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream {url!r} is not an http(s) URL")
        if len(set(urls)) != len(urls):
            raise ValueError("upstreams are listed twice")
        return urls

    @model_validator(mode="after")
    def _upstreams_need_openai(self) -> ModelConfig:
        if self.engine == "openai" and not self.upstreams:
            raise ValueError(f'model {self.id}: engine "openai" needs at least one entry in `upstreams`')
        if self.engine != "openai" and self.upstreams:
            raise ValueError(f'model {self.id}: `upstreams` is only used with engine = "openai"')
        return self

    @property
    def context_configured(self) -> bool:
        """True when `context` was set explicitly (otherwise an upstream's is probed)."""
        return "context" in self.model_fields_set

    def upstream_api_key(self) -> str | None:
        """The key named by `api_key_env`, or None (no key is sent) when unset or empty: the setting is
        optional, like the key itself (a local vLLM takes none). `rolecall serve` warns about it."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env) or None


# The bundled model's output settings. Claude Code asks for max_tokens 32000 and sends no temperature; at
# llama.cpp's default sampling the 135M model rambles on to the end of its context (minutes on 2 cores),
# and a reply cut at the cap makes Claude Code ask again ("Output token limit hit") up to three times.
# Greedy decoding with a repetition penalty ends its turns by themselves (and the same prompt gets the same
# answer); the cap bounds the rest. A client's own temperature / top_p / top_k still wins.
BUNDLED_OUTPUT_CAP = 256
BUNDLED_SAMPLING = SamplingDefaults(temperature=0.0, repeat_penalty=1.2)


def default_models() -> list[ModelConfig]:
    # Only forced tool calls are prompted for: Claude Code's ~17k tokens of tool signatures would not fit the
    # bundled model's 8192-token context (and a 135M model could not use them).
    return [
        ModelConfig(
            id="smollm2-135m-instruct",
            display_name="SmolLM2 135M Instruct",
            # `claude-*`: Claude Code's background calls and SillyTavern's Claude source send only such names.
            aliases=[*SEED_MODEL_NAMES, "claude-*"],
            prompted_tools="forced",
            max_output_tokens=BUNDLED_OUTPUT_CAP,
            sampling=BUNDLED_SAMPLING,
        )
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROLECALL_", extra="ignore")

    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: Annotated[list[str], NoDecode] = []
    models: list[ModelConfig] = Field(default_factory=default_models)
    ping_interval: float = Field(10.0, gt=0)  # seconds without an event before a `ping`
    max_body_bytes: int = Field(32 * 2**20, ge=1024)
    log_level: str = "info"
    # Where rolecall keeps state that must survive restarts (the thinking-signature secret).
    data_dir: Path = Field(default_factory=lambda: Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")) / "rolecall")
    thinking_secret: str | None = None  # fixed signing secret (several instances must share one)
    thinking_signatures: Literal["strict", "lenient"] = "strict"  # a bad signature: 400, or drop the block
    # Request caps, checked after parsing (the body cap above bounds the bytes).
    max_messages: int = Field(10_000, ge=1)
    max_tools: int = Field(1_000, ge=0)
    max_block_chars: int = Field(4 * 2**20, ge=1)  # one text/thinking/tool_result text, or a tool's input_schema
    # Admission: per model, requests beyond the engine's slots wait in a bounded queue, else 529.
    queue_length: int = Field(64, ge=0)
    queue_wait: float = Field(30.0, gt=0)  # seconds a request may wait for a slot before a 529
    max_in_flight: int | None = Field(None, ge=1)  # overrides the engine's slot count
    # Worker processes serving one port (docs/deploy.md): one embedded engine in the parent, admission,
    # affinity, health, the thinking secret and /metrics shared through the parent's coordinator.
    workers: int = Field(1, ge=1, le=64)
    shutdown_grace: float = Field(30.0, ge=0)  # SIGTERM: seconds in-flight streams get before an `error` event
    cors_origins: Annotated[list[str], NoDecode] = []  # browser origins allowed (CORS); empty = CORS off
    # Connections (docs/reliability.md): what one client may hold before it is answered 408/431/503 and closed.
    idle_timeout: float = Field(15.0, gt=0)  # seconds a new connection may stay silent before its first request
    header_timeout: float = Field(10.0, gt=0)  # seconds from a request's first byte to the end of its headers
    body_timeout: float = Field(10.0, gt=0)  # window in which a body must arrive at `min_body_rate` or better
    min_body_rate: int = Field(1024, ge=0)  # bytes per second, averaged over each `body_timeout` window
    max_header_bytes: int = Field(64 * 1024, ge=1024)  # request line and headers together
    max_headers: int = Field(100, ge=8)
    max_connections: int = Field(1000, ge=1)  # open client connections; one more is answered 503 and closed
    # `/metrics` accepts this key (as x-api-key or a bearer token) as well as the API keys, so a scraper
    # needs no key that can generate. When neither is configured, /metrics is open (loopback only).
    metrics_key: str | None = None
    # The store (keys, usage ledger): unset, an SQLite file in `data_dir`; "postgresql://user:pass@host/db" for
    # several instances sharing one database (docs/storage.md).
    database_url: str | None = None
    # Message batches: requests of batches this instance runs at once, each only while no interactive request
    # wants the engine (docs/batches.md). 0: this instance runs none (another instance on the store does).
    batch_concurrency: int = Field(1, ge=0, le=256)
    # Seconds a batch request stays held by the instance running it without a renewal: after a crash, its
    # requests run again elsewhere (or after the restart) once this has passed.
    batch_lease: float = Field(15.0, ge=1, le=600)
    # Guards /admin (keys, usage); ordinary API keys never reach it. Unset: /admin answers 404 saying so.
    admin_key: str | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        if url is not None and url.split("://")[0].split("+")[0].lower() not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("database_url: rolecall stores into sqlite:///PATH or postgresql://USER:PASS@HOST/DB")
        return url or None

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _names_are_unique(self) -> Settings:
        """Each model name (id or alias, globs included) belongs to one model: a shared one would route
        to whichever is listed first, silently."""
        owners: dict[str, int] = {}
        for number, model in enumerate(self.models):
            for name in dict.fromkeys([model.id, *model.aliases]):
                first = owners.setdefault(name, number)
                if first != number:
                    raise ValueError(
                        f'models "{self.models[first].id}" and "{model.id}" both answer to "{name}": '
                        "give each name to one model"
                    )
        return self

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFile(settings_cls, init_settings)


class _ConfigFile(PydanticBaseSettingsSource):
    """The TOML file named by `--config` or `ROLECALL_CONFIG`."""

    def __init__(self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init_settings

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = self._init().get("config") or os.environ.get("ROLECALL_CONFIG")
        if not path:
            return {}
        try:
            with open(path, "rb") as handle:
                return tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ValueError(f"config file {path} cannot be read: {exc.strerror}") from None
