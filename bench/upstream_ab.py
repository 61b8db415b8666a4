"""The zero-cost-upstream harness (bench/upstream_cpu.py) run against several checkouts of rolecall at once.

    git worktree add /tmp/rolecall-main main        # or: git archive REV | tar -x -C DIR
    .venv/bin/python bench/upstream_ab.py /tmp/rolecall-main . [--pace paced burst] [-c 1 16 64] [--rounds 3]
        [--door anthropic|openai|minimax]

Each checkout's server runs from its own directory (with this venv's packages), all of them over one zero-cost
upstream, and each round measures them one after the other, the order reversed every other round: a shared
machine's load then falls on every tree alike, and the before/after of a change is read from one run. The
figures are upstream_cpu.py's: µs of the server's CPU per streamed token, ms per message.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from harness import machine, rolecall_server, table
from upstream_cpu import CONFIG, HEADER, PACE, Load, measure, spread, upstream

DOORS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "minimax": "/v1/text/chatcompletion_v2",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts of rolecall (the directory holding rolecall/)")
    parser.add_argument("--pace", nargs="+", choices=sorted(PACE), default=["paced"])
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[16])
    parser.add_argument("--mode", nargs="+", choices=["stream", "non-stream"], default=["stream"])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each tree per case")
    parser.add_argument("--door", choices=sorted(DOORS), default="anthropic", help="the endpoint the load posts to")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    for pace in args.pace:
        with upstream(PACE[pace]) as upstream_url, contextlib.ExitStack() as servers:
            config = CONFIG.format(upstream=upstream_url)
            loads = {
                tree: Load(*servers.enter_context(rolecall_server(config, tree=tree)), path=DOORS[args.door])
                for tree in args.trees
            }
            for concurrency in args.concurrency:
                for mode in args.mode:
                    runs: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in args.trees}
                    for round_ in range(args.rounds):
                        order = args.trees if round_ % 2 == 0 else args.trees[::-1]
                        for tree in order:
                            runs[tree].append(measure(loads[tree], pace, concurrency, mode == "stream", args.tokens))
                    for tree in args.trees:
                        rows.append([str(tree), pace, concurrency, mode, *spread(runs[tree])])
                        print(table(["tree", *HEADER[1:]], rows[-1:]).splitlines()[-1], flush=True)
    print(table(["tree", *HEADER[1:]], rows))


if __name__ == "__main__":
    main()
