"""Summing the workers' /metrics expositions into one, as if one process had served every request.

Counters, histograms and the request/slot gauges add up across workers (each worker reports what it holds
itself). Two kinds of sample do not: a `*_created` timestamp takes the earliest, and a state gauge that every
worker reports alike (a replica's health) takes the largest.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

_SHARED_STATE = frozenset({"rolecall_upstream_healthy"})


def merge_expositions(texts: Iterable[str]) -> str:
    """One exposition in the text format whose samples are the workers' merged."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            samples = values.setdefault(merged.name, {})
            combine = _combiner(family.name)
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = combine(samples[key], sample.value) if key in samples else sample.value
    for name, merged in families.items():
        for (sample_name, labels), value in values[name].items():
            merged.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry).decode()


def _combiner(family: str) -> Callable[[float, float], float]:
    if family.endswith("_created"):
        return min
    if family in _SHARED_STATE:
        return max
    return operator.add


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
