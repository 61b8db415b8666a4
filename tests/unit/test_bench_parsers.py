"""bench/parsers.py measures what it names: each scenario's answer comes out as the blocks it is about (its
figures are in docs/performance.md; nothing here is timed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "parsers.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_parsers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_every_scenario_parses_into_its_blocks() -> None:
    parsers = bench()
    for scenario in parsers.scenarios():
        parsers.check(scenario)


def test_the_check_can_fail() -> None:
    parsers = bench()
    scenario = parsers.scenarios()[0]
    wrong = parsers.Scenario(scenario.name, scenario.pieces, scenario.model, scenario.request, ("thinking",))
    with pytest.raises(AssertionError):
        parsers.check(wrong)
