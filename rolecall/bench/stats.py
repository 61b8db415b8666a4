"""Figures from samples: throughput per round, latency percentiles over every sample of every round."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from rolecall.bench.runner import Batch

PERCENTILES = (50, 90, 99)


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float] | None:
    """p50/p90/p99 and mean (nearest rank), in milliseconds by default; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    found = {
        f"p{p}": round(ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] * scale, 3)
        for p in PERCENTILES
    }
    found["mean"] = round(statistics.fmean(ordered) * scale, 3)
    return found


def round_figures(batch: Batch) -> dict[str, float]:
    ok = [s for s in batch.samples if s.ok]
    tokens = sum(s.output_tokens for s in ok)
    return {
        "request_throughput": round(len(ok) / batch.duration, 3),
        "output_throughput": round(tokens / batch.duration, 3),
        "duration_s": round(batch.duration, 4),
    }


def summarize(rounds: list[Batch]) -> dict[str, Any]:
    """One target at one concurrency, over its rounds: medians of the per-round throughputs (and
    their spread, the noise), latency percentiles over all samples."""
    first = rounds[0]
    samples = [s for batch in rounds for s in batch.samples]
    ok = [s for s in samples if s.ok]
    per_round = [round_figures(batch) for batch in rounds]
    errors = Counter(s.error for s in samples if not s.ok)
    inputs = [s.input_tokens for s in ok if s.input_tokens is not None]
    summary: dict[str, Any] = {
        "target": first.target.name,
        "url": first.target.url,
        "api": first.target.api,
        "concurrency": first.concurrency,
        "rounds": len(rounds),
        "requests": len(samples),
        "completed": len(ok),
        "errors": len(samples) - len(ok),
        "error_samples": dict(errors.most_common(3)),
        "retried": sum(s.retried for s in samples),  # resent once after a stale kept-alive connection
        "request_throughput": _median(per_round, "request_throughput"),
        "output_throughput": _median(per_round, "output_throughput"),
        "output_throughput_spread": _spread(per_round, "output_throughput"),
        "total_output_tokens": sum(s.output_tokens for s in ok),
        "mean_output_tokens": round(statistics.fmean(s.output_tokens for s in ok), 2) if ok else None,
        "mean_input_tokens": round(statistics.fmean(inputs), 2) if inputs else None,
        "ttft_ms": percentiles([s.ttft for s in ok if s.ttft is not None]),
        "itl_ms": percentiles([gap for s in ok for gap in s.gaps]),
        "latency_ms": percentiles([s.latency for s in ok]),
        "per_round": per_round,
    }
    turns = max((s.turn for s in samples), default=0) + 1
    if turns > 1:
        summary["ttft_ms_by_turn"] = [
            (percentiles([s.ttft for s in ok if s.turn == t and s.ttft is not None]) or {}).get("p50")
            for t in range(turns)
        ]
    return summary


def compare(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """`ours` against `baseline` at one concurrency: ratios of the per-round throughputs (rounds
    alternate, so round i of both saw about the same machine) and the TTFT difference."""
    ratios = [
        round(a["output_throughput"] / b["output_throughput"], 4) if b["output_throughput"] else None
        for a, b in zip(ours["per_round"], baseline["per_round"], strict=False)
    ]
    valid = [r for r in ratios if r is not None]
    ttft_a, ttft_b = ours["ttft_ms"], baseline["ttft_ms"]
    return {
        "target": ours["target"],
        "baseline": baseline["target"],
        "concurrency": ours["concurrency"],
        "output_throughput_ratio": round(statistics.median(valid), 4) if valid else None,
        "output_throughput_ratio_per_round": ratios,
        "request_throughput_ratio": _ratio(ours["request_throughput"], baseline["request_throughput"]),
        "ttft_p50_delta_ms": round(ttft_a["p50"] - ttft_b["p50"], 3) if ttft_a and ttft_b else None,
    }


def _median(rows: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(row[key] for row in rows), 3)


def _spread(rows: list[dict[str, float]], key: str) -> list[float]:
    values = [row[key] for row in rows]
    return [min(values), max(values)]


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None
