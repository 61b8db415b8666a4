"""Gateway-only throughput: rolecall over the zero-cost scripted engine, loaded by wrk (C) on the same machine.

    .venv/bin/python bench/gateway_only.py [--duration 10] [--connections 16 64] [--rounds 2]

wrk comes from the distribution (`make bench-tools`: apt-get install wrk). Without it, the load comes
from `rolecall bench` in several processes, which costs far more CPU per request than wrk and so
understates the gateway. The scripted engine answers instantly with a fixed five-word reply, so
what is measured is rolecall's own work per request: HTTP, validation, shaping, the event pipeline,
SSE framing or the JSON fold.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import BENCH_KEY, machine, rolecall_server, table

CONFIG = """
[[models]]
id = "scripted"
aliases = ["MiniMax-M2.7"]
engine = "scripted"
"""

BODY = (
    '{"model":"MiniMax-M2.7","max_tokens":64,%s"messages":[{"role":"user","content":'
    '"Say hello to the benchmark, briefly."}]}'
)


def wrk(url: str, *, stream: bool, connections: int, duration: int, script_dir: Path) -> dict[str, float | str]:
    script = script_dir / f"post-{int(stream)}.lua"
    body = BODY % ('"stream":true,' if stream else "")
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["x-api-key"] = "{BENCH_KEY}"\nwrk.body = \'{body}\'\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url + "/v1/messages"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
    }


def _latency(out: str, label: str) -> str:
    found = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", out, re.MULTILINE)
    return found.group(1) if found else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each case, alternating stream/non-stream")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk not found: `make bench-tools` installs it (or use `rolecall bench --no-stream` "
            "with a high -c, which measures the Python client as much as the server)"
        )
    print(f"machine: {machine()}")
    rows = []
    with rolecall_server(CONFIG) as (url, _), tempfile.TemporaryDirectory() as scripts:
        wrk(url, stream=False, connections=8, duration=2, script_dir=Path(scripts))  # warm-up
        for connections in args.connections:
            for number in range(args.rounds):
                for stream in (False, True) if number % 2 == 0 else (True, False):
                    found = wrk(
                        url, stream=stream, connections=connections, duration=args.duration, script_dir=Path(scripts)
                    )
                    rows.append(
                        [
                            "stream" if stream else "non-stream",
                            connections,
                            number + 1,
                            found["req_s"],
                            found["p50"],
                            found["p99"],
                            found["non_2xx"],
                            found["socket_errors"],
                        ]
                    )
    print(
        table(["mode", "connections", "round", "req/s", "latency p50", "latency p99", "non-2xx", "socket errors"], rows)
    )


if __name__ == "__main__":
    main()
