"""Dependency direction (DESIGN.md): lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rolecall

ROOT = Path(rolecall.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every rolecall module a file imports, anywhere in it (function bodies and TYPE_CHECKING too)."""
    package = ".".join(("rolecall", *path.relative_to(ROOT).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "rolecall" or name.startswith("rolecall.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules_importing() -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT.parent)): _imports(path) for path in sorted(ROOT.rglob("*.py"))}


SOURCES = _modules_importing()


def _in(layer: str) -> dict[str, set[str]]:
    return {file: mods for file, mods in SOURCES.items() if file.startswith(f"rolecall/{layer}/")}


def _imported_layers(mods: set[str]) -> set[str]:
    # `from rolecall import __version__` names the root package: a layer of its own ("").
    return {_layer(m) for m in mods if not (m == "rolecall" or m.startswith("rolecall.__"))} - {""}


def test_the_walk_sees_the_source() -> None:
    assert "rolecall/service/messages.py" in SOURCES
    assert "rolecall.parsing.stops" in SOURCES["rolecall/service/messages.py"]


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("core", {"core"}),
        ("protocol", {"core", "protocol"}),
        ("shaping", {"core", "protocol", "shaping"}),
    ],
)
def test_layer_imports_only(layer: str, allowed: set[str]) -> None:
    offending = {file: sorted(m for m in mods if _layer(m) not in allowed) for file, mods in _in(layer).items()}
    assert {f: m for f, m in offending.items() if m} == {}


def test_parsing_does_not_import_upper_layers() -> None:
    forbidden = {"app", "service", "engines", "cli"}
    offending = {file: sorted(m for m in mods if _layer(m) in forbidden) for file, mods in _in("parsing").items()}
    assert {f: m for f, m in offending.items() if m} == {}


def test_bench_depends_on_nothing_of_the_server() -> None:
    """`rolecall bench` measures any server, rolecall included, through its own code only."""
    offending = {file: sorted(m for m in mods if _layer(m) != "bench") for file, mods in _in("bench").items()}
    assert {f: m for f, m in offending.items() if m} == {}
    assert _in("bench"), "the walk sees rolecall/bench"


def test_only_cli_imports_bench() -> None:
    offending = {
        file: sorted(m for m in mods if _layer(m) == "bench")
        for file, mods in SOURCES.items()
        if not file.startswith(("rolecall/cli/", "rolecall/bench/"))
    }
    assert {f: m for f, m in offending.items() if m} == {}


def test_only_cli_imports_the_app() -> None:
    offending = {
        file: sorted(m for m in mods if _layer(m) == "app")
        for file, mods in SOURCES.items()
        if not file.startswith(("rolecall/cli/", "rolecall/app/"))
    }
    assert {f: m for f, m in offending.items() if m} == {}


def test_no_layer_below_app_imports_cli() -> None:
    offending = {
        file: sorted(m for m in mods if _layer(m) == "cli")
        for file, mods in SOURCES.items()
        if not file.startswith("rolecall/cli/") and file != "rolecall/__main__.py"
    }
    assert {f: m for f, m in offending.items() if m} == {}
