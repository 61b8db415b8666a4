"""Packaging metadata: the license in SPDX form (setuptools >= 77), so installs print no deprecation warning."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["license"] == "Apache-2.0"  # a table here is deprecated since setuptools 77
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to read the SPDX form
    metadata = importlib.metadata.metadata("rolecall")
    assert metadata["License-Expression"] == "Apache-2.0", "reinstall: make install"
