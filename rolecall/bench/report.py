"""The human-readable report: one row per target and concurrency, then the ratios."""

from __future__ import annotations

from typing import Any

_HEADER = (
    f"{'target':<12} {'conc':>4} {'ok':>5} {'err':>4} {'req/s':>8} {'out tok/s':>10} "
    f"{'TTFT p50/p90/p99 ms':>22} {'ITL p50/p90/p99 ms':>20}"
)


def render(result: dict[str, Any]) -> str:
    workload = result["workload"]
    per_round, turns = result["requests_per_round"], workload["turns"]
    conversations = f" ({per_round // turns} conversation(s) of {turns} turns)" if turns > 1 else ""
    lines = [
        f"workload: ~{workload['prompt_tokens']} prompt tokens, max_tokens {workload['max_tokens']}, "
        f"{'streaming' if workload['stream'] else 'non-streaming'}, {turns} turn(s); "
        f"{per_round} requests{conversations} x {result['rounds']} round(s) per target and level",
        _HEADER,
    ]
    for row in result["results"]:
        lines.append(
            f"{row['target'][:12]:<12} {row['concurrency']:>4} {row['completed']:>5} {row['errors']:>4} "
            f"{row['request_throughput']:>8.2f} {row['output_throughput']:>10.1f} "
            f"{_triple(row['ttft_ms']):>22} {_triple(row['itl_ms']):>20}"
        )
        if any(v is not None for v in row.get("ttft_ms_by_turn") or ()):
            by_turn = " ".join("-" if v is None else f"{v:.1f}" for v in row["ttft_ms_by_turn"])
            lines.append(f"{'':<12} TTFT p50 by turn (ms): {by_turn}")
        for error, count in row["error_samples"].items():
            lines.append(f"{'':<12} {count} x {error}")
    for pair in result["comparisons"]:
        ratio = pair["output_throughput_ratio"]
        delta = pair["ttft_p50_delta_ms"]
        lines.append(
            f"{pair['target']} / {pair['baseline']} at c={pair['concurrency']}: output tok/s ratio "
            f"{'-' if ratio is None else f'{ratio:.3f}'} (per round: "
            f"{', '.join('-' if r is None else f'{r:.3f}' for r in pair['output_throughput_ratio_per_round'])}), "
            f"TTFT p50 {'-' if delta is None else f'{delta:+.2f} ms'}"
        )
    return "\n".join(lines)


def _triple(figures: dict[str, float] | None) -> str:
    if not figures:
        return "-"
    return f"{figures['p50']:.1f}/{figures['p90']:.1f}/{figures['p99']:.1f}"
