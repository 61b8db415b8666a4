"""Prometheus metrics, one registry per app (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rolecall.core.usage import Usage
from rolecall.engines.replicas import ReplicaSet
from rolecall.service.registry import ModelRegistry

# Per-key series stay bounded: keys beyond this many distinct labels are counted together as "other".
MAX_KEY_LABELS = 1000

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rolecall_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.in_flight = Gauge("rolecall_in_flight_requests", "HTTP requests being served", registry=self.registry)
        self.latency = Histogram(
            "rolecall_request_duration_seconds",
            "Time to the last byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "rolecall_time_to_first_token_seconds",
            "Time from request to the first generated content",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.input_tokens = Counter(
            "rolecall_input_tokens", "Prompt tokens not served from cache", ["model"], registry=self.registry
        )
        self.cache_read_tokens = Counter(
            "rolecall_cache_read_input_tokens",
            "Prompt tokens served from the engine's prefix cache",
            ["model"],
            registry=self.registry,
        )
        self.output_tokens = Counter("rolecall_output_tokens", "Generated tokens", ["model"], registry=self.registry)
        self.admission_in_flight = Gauge(
            "rolecall_admission_in_flight", "Requests holding an engine slot", ["model"], registry=self.registry
        )
        self.admission_queued = Gauge(
            "rolecall_admission_queued", "Requests waiting for an engine slot", ["model"], registry=self.registry
        )
        self.shed = Counter(
            "rolecall_shed_requests",
            "Requests refused with 529 by admission control",
            ["model"],
            registry=self.registry,
        )

        self.key_requests = Counter(
            "rolecall_key_requests",
            "Requests by API key (ledger label) and status",
            ["key", "status"],
            registry=self.registry,
        )
        self.key_tokens = Counter(
            "rolecall_key_tokens",
            "Tokens by API key: input (computed), cached (read from the prefix cache) and output",
            ["key", "kind"],
            registry=self.registry,
        )
        self._key_labels: set[str] = set()
        self.batch_items = Counter(
            "rolecall_batch_items",
            "Message batch requests ended by this instance's runner, by result type",
            ["result"],
            registry=self.registry,
        )
        self.batch_pending = Gauge(
            "rolecall_batch_items_pending",
            "Message batch requests in the store not yet started (every instance's)",
            registry=self.registry,
        )

    def key_label(self, key: str | None) -> str:
        """The key's metric label: its ledger label, "none" for a request without a valid key, "other" once
        MAX_KEY_LABELS keys have their own series."""
        if key is None:
            return "none"
        if key not in self._key_labels:
            if len(self._key_labels) >= MAX_KEY_LABELS:
                return "other"
            self._key_labels.add(key)
        return key

    def record_key(self, key: str | None, status: int, input_tokens: int, cached: int, output: int) -> None:
        """Count one request of a key (the ledger row's figures)."""
        label = self.key_label(key)
        self.key_requests.labels(label, str(status)).inc()
        for kind, tokens in (("input", input_tokens), ("cached", cached), ("output", output)):
            if tokens:
                self.key_tokens.labels(label, kind).inc(tokens)

    def observe_admission(self, counts: dict[str, tuple[int, int]]) -> None:
        """Set the admission gauges from `Admission.counts()`."""
        for model, (in_flight, queued) in counts.items():
            self.admission_in_flight.labels(model).set(in_flight)
            self.admission_queued.labels(model).set(queued)

    def watch_replicas(self, models: ModelRegistry) -> None:
        """Expose per-replica requests, errors, in-flight and health of the `openai` engines."""
        self.registry.register(_ReplicaCollector(models))

    def record_usage(self, model: str, usage: Usage) -> None:
        """Count one turn's tokens."""
        self.input_tokens.labels(model).inc(usage.uncached_tokens)
        self.cache_read_tokens.labels(model).inc(usage.cached_tokens)
        self.output_tokens.labels(model).inc(usage.output_tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ReplicaCollector(Collector):
    """Reads the replica sets' own counters at scrape time (they live in the engines layer)."""

    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "replica"]
        requests = CounterMetricFamily(
            "rolecall_upstream_requests", "Generation attempts sent to each upstream replica", labels=labels
        )
        errors = CounterMetricFamily(
            "rolecall_upstream_errors", "Failed calls (generation or prompt count) per upstream replica", labels=labels
        )
        in_flight = GaugeMetricFamily("rolecall_upstream_in_flight", "Requests open on each replica", labels=labels)
        healthy = GaugeMetricFamily("rolecall_upstream_healthy", "1 while the replica is admitted", labels=labels)
        opened = CounterMetricFamily(
            "rolecall_upstream_connections_opened", "Streaming connections made to each replica", labels=labels
        )
        idle = GaugeMetricFamily(
            "rolecall_upstream_connections_idle", "Kept-alive connections to each replica, waiting", labels=labels
        )
        for model in self._models.models:
            if not isinstance(model.engine, ReplicaSet):
                continue
            for replica in model.engine.status():
                names = [model.id, replica.url]
                requests.add_metric(names, replica.requests)
                errors.add_metric(names, replica.errors)
                in_flight.add_metric(names, replica.in_flight)
                healthy.add_metric(names, 1 if replica.healthy else 0)
                opened.add_metric(names, replica.connections_opened)
                idle.add_metric(names, replica.connections_idle)
        yield from (requests, errors, in_flight, healthy, opened, idle)
