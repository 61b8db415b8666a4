"""`rolecall <command>`: one module per command group."""

from __future__ import annotations

import argparse

from rolecall import __version__
from rolecall.cli import batches, bench, chat, keys, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rolecall", description="MiniMax / Anthropic Messages API for open models")
    parser.add_argument("--version", action="version", version=f"rolecall {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.register(commands)
    bench.register(commands)
    chat.register(commands)
    keys.register(commands)
    batches.register(commands)
    args = parser.parse_args(argv)
    return args.run(args)
