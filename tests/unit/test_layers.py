"""The layer rule (DESIGN.md, docs/architecture.md): one table of allowed import edges between rolecall's
packages, and every edge outside it fails."""

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


# Package -> the packages it may import (besides itself and the root package's `__version__`).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "protocol": {"core"},
    "shaping": {"core", "protocol"},
    "parsing": {"core"},
    "engines": {"core", "parsing"},
    "store": {"core"},
    # `settings` only from service/runtime.py (see SETTINGS_READERS).
    "service": {"core", "protocol", "shaping", "parsing", "engines", "store", "settings"},
    # `settings` only from app/factory.py.
    "app": {"service", "protocol", "core", "settings"},
    # DESIGN.md lists app and service; `rolecall bench` is a CLI command too, so cli also drives bench/.
    "cli": {"app", "service", "bench", "settings"},
    "bench": set(),  # measures any server, rolecall included, through its own code only
    "settings": set(),
    "playground": set(),  # the browser page's static files (package data); no Python of its own
    "__main__": {"cli"},
}
# settings.py is read by the CLI, the app factory and the runtime builder only.
SETTINGS_READERS = ("rolecall/cli/", "rolecall/app/factory.py", "rolecall/service/runtime.py")


def _layer(module: str) -> str:
    """`rolecall.service.turn` -> "service"; the root package (`rolecall`, `rolecall.__version__`) -> ""."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__version__":
        return ""
    return parts[1]


def _file_layer(file: str) -> str:
    """`rolecall/service/turn.py` -> "service", `rolecall/settings.py` -> "settings"."""
    parts = Path(file).with_suffix("").parts
    return "" if parts[1:] == ("__init__",) else parts[1]


def _modules_importing() -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT.parent)): _imports(path) for path in sorted(ROOT.rglob("*.py"))}


SOURCES = _modules_importing()


def violations(sources: dict[str, set[str]]) -> dict[str, list[str]]:
    """Per file, the rolecall modules it imports against the table."""
    found: dict[str, list[str]] = {}
    for file, modules in sources.items():
        layer = _file_layer(file)
        allowed = ALLOWED.get(layer, set()) | {layer, ""}
        bad = sorted(
            m
            for m in modules
            if _layer(m) not in allowed or (_layer(m) == "settings" and not file.startswith(SETTINGS_READERS))
        )
        if bad:
            found[file] = bad
    return found


def test_the_walk_sees_the_source() -> None:
    assert "rolecall.parsing.stops" in SOURCES["rolecall/service/turn.py"]
    assert {_file_layer(file) for file in SOURCES} >= {"core", "protocol", "shaping", "service", "engines", "app"}


def test_every_package_is_in_the_table() -> None:
    """A new package must say what it may import before it can import anything."""
    assert {_file_layer(file) for file in SOURCES} - {""} <= set(ALLOWED)


def test_every_import_edge_is_in_the_table() -> None:
    assert violations(SOURCES) == {}


@pytest.mark.parametrize(
    ("file", "module"),
    [
        ("rolecall/engines/registry.py", "rolecall.settings"),
        ("rolecall/app/routes.py", "rolecall.engines.registry"),
        ("rolecall/service/admission.py", "rolecall.settings"),
        ("rolecall/app/factory.py", "rolecall.shaping.thinking"),
        ("rolecall/protocol/anthropic/encoder.py", "rolecall.service.turn"),
        ("rolecall/core/events.py", "rolecall.protocol.anthropic.events"),
        ("rolecall/bench/runner.py", "rolecall.core.errors"),
        ("rolecall/parsing/stops.py", "rolecall.engines.base"),
    ],
)
def test_an_edge_outside_the_table_fails(file: str, module: str) -> None:
    """The checker itself can fail: edges the old layout had, and others the table forbids."""
    assert violations({file: {module}}) == {file: [module]}
