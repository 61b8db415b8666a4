"""Everything a request needs, built once in the app's lifespan (no module-level state), and the one
place below the CLI and the app factory that reads the configuration (settings.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from rolecall.core.conversation import OutputSettings, Sampling
from rolecall.engines.base import Engine
from rolecall.engines.bundled import resolve_gguf
from rolecall.engines.embedded_client import EmbeddedClient
from rolecall.engines.fake import ScriptedEngine
from rolecall.engines.llamacpp import EmbeddedLlamaCpp
from rolecall.engines.openai_upstream import OpenAIChatEngine
from rolecall.engines.replicas import ReplicaSet
from rolecall.service.accounting import Ledger
from rolecall.service.admission import Admission, slots_for
from rolecall.service.batches.desk import BatchDesk
from rolecall.service.drain import Drain
from rolecall.service.keyring import KeyDirectory
from rolecall.service.limits import Limiter, MemoryCounters
from rolecall.service.metrics import Metrics
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.service.signing_secret import thinking_secret
from rolecall.service.workers.link import SharedAdmission, SharedAffinity
from rolecall.service.workers.share import WorkerShare, take_health
from rolecall.settings import ModelConfig, Settings
from rolecall.shaping.thinking import ThinkingSigner
from rolecall.store.batches import BATCHES_MIGRATIONS, BatchStore
from rolecall.store.counters import LIMITS_MIGRATIONS, StoreCounters
from rolecall.store.database import Database, database_url, public
from rolecall.store.keys import KeyStore
from rolecall.store.ledger import LedgerWriter
from rolecall.store.migrations import STORE_MIGRATIONS

# Every table in the store: the store's own (keys, ledger), the limits' counters and the message batches.
MIGRATIONS = (*STORE_MIGRATIONS, *LIMITS_MIGRATIONS, *BATCHES_MIGRATIONS)


@dataclass
class Runtime:
    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    signer: ThinkingSigner
    admission: Admission | SharedAdmission
    drain: Drain
    limiter: Limiter
    store: Stored | None = None  # None: no keys from a store, no ledger (unit tests of the pipeline)
    share: WorkerShare | None = None  # one of several workers: what the parent shares with it
    batches: BatchDesk | None = None  # Message Batches, where there is a store

    def local_exposition(self) -> str:
        """This process's /metrics."""
        self.metrics.observe_admission(self.admission.counts())
        return self.metrics.exposition().decode()

    async def exposition(self) -> bytes:
        """What /metrics shows: with several workers, the sum of all of theirs."""
        if self.share is None:
            self.metrics.observe_admission(self.admission.counts())
            return self.metrics.exposition()
        return (await self.share.link.scrape()).encode()


@dataclass
class Stored:
    """The store and what runs on it: the keys authentication reads, the ledger's writer."""

    database: Database
    keys: KeyDirectory
    ledger: Ledger
    writer: LedgerWriter

    async def close(self) -> None:
        """Stop watching the keys, write the ledger rows still queued, close the connections."""
        await self.keys.close()
        await self.writer.close()
        await self.database.close()


def store_location(settings: Settings) -> str:
    """Where the store is, fit for logs (a PostgreSQL password hidden)."""
    return public(database_url(settings.database_url, settings.data_dir))


async def store_has_keys(settings: Settings) -> bool:
    """Whether the store holds any API key (revoked ones count: auth stays on)."""
    database = await open_store(settings)
    try:
        return bool(await KeyStore(database).all())
    finally:
        await database.close()


async def open_store(settings: Settings) -> Database:
    """The configured database (the SQLite file in `data_dir` by default), migrated."""
    return await Database.open(database_url(settings.database_url, settings.data_dir), MIGRATIONS)


async def start_store(settings: Settings, metrics: Metrics) -> Stored:
    """Open the store, load its keys and start the ledger's writer (`Stored.close` stops them)."""
    database = await open_store(settings)
    try:
        keys = KeyDirectory(KeyStore(database))
        await keys.refresh()
    except BaseException:
        await database.close()
        raise
    keys.start()
    writer = LedgerWriter(database)
    writer.start()
    return Stored(database, keys, Ledger(writer, metrics), writer)


async def start_runtime(
    settings: Settings,
    registry: ModelRegistry,
    metrics: Metrics,
    drain: Drain,
    store: Stored | None,
    share: WorkerShare | None = None,
) -> Runtime:
    """Start the engines (the caller closes `registry` and `store` when done) and build the runtime around them.
    With `share` (one of several workers), admission and the thinking secret are the parent's."""
    await registry.start()
    metrics.watch_replicas(registry)
    # The limits count in the store, so every instance and worker process on it shares one key's counts.
    limiter = Limiter(StoreCounters(store.database) if store is not None else MemoryCounters())
    if share is None:
        signer = ThinkingSigner(thinking_secret(settings.thinking_secret, settings.data_dir))
        admission = build_admission(registry.models, settings)
        return Runtime(settings, registry, metrics, signer, admission, drain, limiter, store, batches=_desk(store))
    slots = {model.id: slots_for(model, settings.max_in_flight) for model in registry.models}
    shared = SharedAdmission(share.link, slots)
    signer = ThinkingSigner(share.secret)
    runtime = Runtime(settings, registry, metrics, signer, shared, drain, limiter, store, share, _desk(store))
    gates = {model: [count, settings.queue_length, settings.queue_wait] for model, count in slots.items()}
    take_health(registry, share.link)
    await share.link.connect(gates, runtime.local_exposition)
    return runtime


def _desk(store: Stored | None) -> BatchDesk | None:
    return BatchDesk(BatchStore(store.database)) if store is not None else None


def build_admission(models: list[ServedModel], settings: Settings) -> Admission:
    """One admission gate per model, sized by the configuration."""
    return Admission.for_models(
        models, max_in_flight=settings.max_in_flight, queue_length=settings.queue_length, queue_wait=settings.queue_wait
    )


def check_models(settings: Settings) -> None:
    """Raise what a broken model configuration would fail with at start-up (a missing .gguf is an
    OSError), before anything starts. An unset `api_key_env` is not one: `rolecall serve` warns."""
    for model in settings.models:
        if model.engine == "llamacpp":
            resolve_gguf(model.gguf)


def build_registry(
    configs: list[ModelConfig],
    progress: Callable[[str], None] | None = None,
    stopping: Callable[[], bool] = lambda: False,
    share: WorkerShare | None = None,
) -> ModelRegistry:
    """Engines for the configured models; nothing starts until `ModelRegistry.start`. `stopping` says
    whether rolecall is shutting down (a supervised engine that exits then is not restarted). With `share`
    (one of several workers), an embedded model is the parent's engine, and affinity is the coordinator's."""
    # Several workers: the parent has said what each engine is; every worker saying it again is noise.
    report = progress or (
        logging.getLogger("rolecall.engine").debug if share else logging.getLogger("rolecall.engine").info
    )
    served = []
    for config in configs:
        if config.engine == "llamacpp" and share is not None:
            path = resolve_gguf(config.gguf)
            url, key = share.embedded[config.id]
            engine: Engine = EmbeddedClient(url, key, context=config.context, parallel=config.parallel)
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        elif config.engine == "llamacpp":
            path = resolve_gguf(config.gguf)
            engine = EmbeddedLlamaCpp(
                path,
                context=config.context,
                parallel=config.parallel,
                threads=config.threads,
                progress=report,
                stopping=stopping,
            )
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        elif config.engine == "openai":
            homes = SharedAffinity(share.link, config.id) if share is not None and len(config.upstreams) > 1 else None
            engine = _replica_set(config, report, homes, probe=share is None)
            created = datetime.now(UTC)
        else:
            engine = ScriptedEngine(context_window=config.context)
            created = datetime(2024, 11, 1, tzinfo=UTC)
        served.append(
            ServedModel(
                id=config.id,
                engine=engine,
                display_name=config.display_name or config.id,
                created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                aliases=list(config.aliases),
                reasoning=config.reasoning,
                tool_parser=config.tool_parser,
                prompted_tools=config.prompted_tools,
                output=OutputSettings(config.max_output_tokens, Sampling(**config.sampling.model_dump())),
            )
        )
    return ModelRegistry(served)


def _replica_set(
    config: ModelConfig,
    progress: Callable[[str], None],
    shared_homes: SharedAffinity | None = None,
    probe: bool = True,
) -> ReplicaSet:
    """The `openai` engine: one client per upstream URL, all behind one balancer."""
    key = config.upstream_api_key()
    context = config.context if config.context_configured else None
    engines = [
        OpenAIChatEngine(
            url,
            api_key=key,
            upstream_model=config.upstream_model,
            context_window=context,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            first_byte_timeout=config.first_byte_timeout,
            pool_size=config.pool_size,
        )
        for url in config.upstreams
    ]
    return ReplicaSet(
        engines,
        context_window=context,
        health_interval=config.health_interval,
        progress=progress,
        shared_homes=shared_homes,
        probe=probe,
    )
