"""`rolecall bench` end to end: against the real server (bundled model, tiny counts) and the scripted
engine, whose answers and counts are known exactly."""

from __future__ import annotations

import json
import os
import re

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
    assert len(scripted.requests) == 6 and {r.max_tokens for r in scripted.requests} == {64}  # the default
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


def test_the_header_counts_the_requests_whole_conversations_make(
    scripted: ScriptedEngine, scripted_url, capsys
) -> None:
    """-n 2 with --turns 5 runs one whole conversation of 5 requests; the report says 5, not 2."""
    code = main(["bench", scripted_url, "--turns", "5", "-n", "2", "--prompt-tokens", "20", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and len(scripted.requests) == 5
    assert "; 5 requests (1 conversation(s) of 5 turns) x 1 round(s) per target and level" in out, out


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


def test_a_target_that_fails_every_request_exits_1_naming_it(scripted_url: str, capsys) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, result, err = bench_json(capsys, scripted_url, "--compare", down, "--compare-name", "down", "-n", "2")
    assert [(row["target"], row["completed"]) for row in result["results"]] == [("target", 2), ("down", 0)]
    assert code == 1
    assert "rolecall bench: every request to down failed" in err


def test_progress_on_a_non_terminal_is_plain_lines(scripted_url: str, capsys) -> None:
    """Not a terminal (a CI log, a pipe): no bar, but never silent either."""
    code, _, err = bench_json(capsys, scripted_url, "-n", "3")
    assert code == 0
    assert err.splitlines()[0] == "bench: 0/3 requests, 0 s  [target c=1 round 1/1]"
    assert err.splitlines()[-1].startswith("bench: 3/3 requests, ") and err.endswith("[done]\n")
    assert "\r" not in err


def test_help_shows_every_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "requests per target, level and round (default: 8)",
        "answer length cap (default: 64)",
        "concurrency levels, run in order (default: 1)",
        "approximate first-message length (default: 64)",
        "seconds per request (default: 300.0)",
        "model name in the requests (default: MiniMax-M2.7)",
        "sampling top_k (default: 1,",
    ):
        assert shown in text, shown


def test_compare_embedded_measures_the_engine_rolecall_would_start(real_url: str, tmp_path, capsys) -> None:
    """rolecall against its own engine: the CLI starts llama.cpp with the model the config names, as
    rolecall would, measures it over its OpenAI API, and stops it."""
    config = tmp_path / "rolecall.toml"
    config.write_text(
        '[[models]]\nid = "smollm2"\naliases = ["MiniMax-M2.7"]\ncontext = 2048\nparallel = 1\nthreads = 1\n'
    )
    workers_before = _engine_children()
    code, result, err = bench_json(
        capsys,
        real_url,
        "--api-key",
        API_KEY,
        "--name",
        "rolecall",
        "--compare",
        "embedded",
        "--config",
        str(config),
        "-n",
        "2",
        "--max-tokens",
        "4",
        "--prompt-tokens",
        "24",
        "--timeout",
        "120",
    )
    assert code == 0, err
    ours, baseline = result["results"]
    assert (ours["target"], baseline["target"], baseline["api"]) == ("rolecall", "llama.cpp", "openai")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/chat/completions", baseline["url"])
    for row in (ours, baseline):
        assert (row["completed"], row["errors"]) == (2, 0) and 0 < row["mean_output_tokens"] <= 4
    assert result["comparisons"][0]["baseline"] == "llama.cpp"
    assert "bench: loading SmolLM2-135M-Instruct.Q4_1.gguf" in err and "bench: engine ready" in err
    assert _engine_children() == workers_before, "the engine the bench started is stopped"


def _engine_children() -> set[int]:
    """This process's llama.cpp worker children (the real server's engine among them)."""
    found = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as handle:
            for pid in handle.read().split():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        if b"llamacpp_worker" in cmdline.read():
                            found.add(int(pid))
                except FileNotFoundError:
                    pass
    return found
