"""A real `rolecall serve` process for the crash tests: started on a free port, killed with SIGKILL or stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.waiting import wait_until


class ServeProcess:
    """`rolecall serve --config CONFIG` with `env`, its output appended to `log`; a new port on every launch."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config = config
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "rolecall", "serve", "--port", str(self.port), "--config", str(self.config)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, timeout=60), self.log.read_text()[-2000:]

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, nothing is closed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
