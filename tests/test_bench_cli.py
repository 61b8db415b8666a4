"""`rolecall bench` end to end: against the real server (bundled model, tiny counts) and the scripted
engine, whose answers and counts are known exactly."""

from __future__ import annotations

import json

import pytest

from rolecall.bench.workload import Workload
from rolecall.cli import main
from rolecall.engines.fake import ScriptedEngine
from tests.conftest import API_KEY
from tests.support.server import free_port

SCRIPTED_REPLY_WORDS = 5  # "Hello from the scripted engine."


def bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["bench", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_real_server_two_levels_compared_in_alternating_rounds(real_url: str, capsys) -> None:
    code, result, err = bench_json(
        capsys,
        real_url,
        "--api-key",
        API_KEY,
        "--name",
        "v1",
        "--compare",
        real_url + "/anthropic",
        "--compare-key",
        API_KEY,
        "--compare-name",
        "anthropic",
        "-c",
        "1",
        "2",
        "-n",
        "2",
        "--rounds",
        "2",
        "--max-tokens",
        "4",
        "--prompt-tokens",
        "24",
        "--timeout",
        "120",
        "--progress",
    )
    assert code == 0
    assert "16/16" in err  # the bar counts every measured request (2 levels x 2 rounds x 2 targets x 2)
    assert [(r["target"], r["concurrency"]) for r in result["results"]] == [
        ("v1", 1),
        ("anthropic", 1),
        ("v1", 2),
        ("anthropic", 2),
    ]
    for row in result["results"]:
        assert (row["requests"], row["completed"], row["errors"], row["rounds"], row["retried"]) == (4, 4, 0, 2, 0)
        assert row["url"].endswith("/v1/messages") and row["api"] == "anthropic"
        assert 0 < row["mean_output_tokens"] <= 4
        assert row["total_output_tokens"] == round(row["mean_output_tokens"] * 4)
        assert 20 <= row["mean_input_tokens"] <= 80
        assert row["request_throughput"] > 0 and row["output_throughput"] > 0
        assert len(row["per_round"]) == 2
        ttft, latency = row["ttft_ms"], row["latency_ms"]
        assert 0 < ttft["p50"] <= ttft["p90"] <= ttft["p99"] <= latency["p99"]
        assert row["itl_ms"] is None or row["itl_ms"]["p50"] >= 0
    assert [c["concurrency"] for c in result["comparisons"]] == [1, 2]
    for pair in result["comparisons"]:
        assert (pair["target"], pair["baseline"]) == ("v1", "anthropic")
        assert pair["output_throughput_ratio"] > 0 and len(pair["output_throughput_ratio_per_round"]) == 2
        assert isinstance(pair["ttft_p50_delta_ms"], float)
    assert result["workload"]["max_tokens"] == 4 and result["rounds"] == 2


def test_scripted_counts_are_exact(scripted: ScriptedEngine, scripted_url: str, capsys) -> None:
    code, result, _ = bench_json(capsys, scripted_url, "-c", "3", "-n", "6", "--prompt-tokens", "40")
    (row,) = result["results"]
    assert code == 0 and (row["completed"], row["errors"]) == (6, 0)
    assert len(scripted.requests) == 6 and {r.max_tokens for r in scripted.requests} == {128}
    assert row["mean_output_tokens"] == SCRIPTED_REPLY_WORDS
    words = len(Workload(prompt_tokens=40).first_message("tag").split())
    assert row["mean_input_tokens"] == words + 1  # the scripted count: words, plus one per turn
    assert row["itl_ms"]["p50"] >= 0 and row["ttft_ms"]["p50"] > 0


def test_scripted_multi_turn_non_streaming(scripted: ScriptedEngine, scripted_url: str, capsys) -> None:
    code, result, _ = bench_json(
        capsys, scripted_url, "--no-stream", "--turns", "2", "-n", "4", "-c", "2", "--prompt-tokens", "30"
    )
    (row,) = result["results"]
    assert code == 0 and row["completed"] == 4
    assert row["ttft_ms"] is None and row["itl_ms"] is None  # nothing to time without a stream
    assert row["ttft_ms_by_turn"] == [None, None]
    first = len(Workload(prompt_tokens=30).first_message("tag").split()) + 1
    second = first + (SCRIPTED_REPLY_WORDS + 1) + (len(Workload.follow_up(0).split()) + 1)
    assert row["mean_input_tokens"] == (first + second) / 2
    assert [len(r.turns) for r in scripted.requests].count(3) == 2  # each second turn carried the history


def test_unreachable_target_reports_errors(capsys) -> None:
    code, result, _ = bench_json(capsys, f"http://127.0.0.1:{free_port()}", "-n", "3", "--timeout", "5")
    (row,) = result["results"]
    assert code == 1
    assert (row["completed"], row["errors"]) == (0, 3)
    assert sum(row["error_samples"].values()) == 3
    assert row["ttft_ms"] is None and row["request_throughput"] == 0


def test_text_report_and_bad_arguments(scripted_url: str, capsys) -> None:
    assert main(["bench", scripted_url, "-n", "2", "--compare", scripted_url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "target / baseline at c=1: output tok/s ratio" in out and "req/s" in out
    assert main(["bench", scripted_url, "-c", "0"]) == 2
    assert "--concurrency must be at least 1" in capsys.readouterr().err
