"""One worker of `rolecall serve --workers N`, started by the parent (cli/workers.py), never by hand.

Protocol with the parent: one JSON line on stdin (the settings, and `WorkerShare`: the coordinator's socket,
the embedded engines' URLs and internal keys, the thinking secret), so no secret is on a command line other
users can read. The listening socket arrives as an inherited file descriptor. SIGTERM drains as
`rolecall serve` does; losing the coordinator (the parent died) stops the worker the same way.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys

import uvicorn

from rolecall.app import create_app
from rolecall.cli.serve import draining_server
from rolecall.cli.workers import worker_settings
from rolecall.service.workers.share import WorkerShare


def main() -> int:
    setup = json.loads(sys.stdin.readline())
    settings = worker_settings(setup["settings"])
    share = WorkerShare.from_wire(setup["share"])
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s", stream=sys.stderr)
    logging.getLogger("rolecall").setLevel(settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    listener = socket.socket(fileno=setup["fd"])
    server = draining_server(create_app(settings, share=share), settings)
    server.on_listening = lambda: share.link.tell({"op": "listening"})
    share.link.on_lost = share.link.on_drain = lambda: _drain(server)
    share.link.on_exit = lambda: _end_now(server)
    with listener:
        server.run(sockets=[listener])
    return 0


def _drain(server: uvicorn.Server) -> None:
    """Stop as on a first SIGTERM, unless a stop is already under way (one stop, however many ways it arrives)."""
    if not server.should_exit:
        server.handle_exit(signal.SIGTERM, None)


def _end_now(server: uvicorn.Server) -> None:
    """Stop as on a second Ctrl-C: streams in flight end at once."""
    _drain(server)
    server.handle_exit(signal.SIGINT, None)


if __name__ == "__main__":
    raise SystemExit(main())
