"""The embedded engine's default thread count: all cores but one on small machines (docs/performance.md)."""

from __future__ import annotations

import pytest

from rolecall.engines.llamacpp import default_threads


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 2), (4, 3), (5, None), (64, None)])
def test_small_machines_leave_a_core_to_rolecall(cores: int, threads: int | None) -> None:
    assert default_threads(cores) == threads
