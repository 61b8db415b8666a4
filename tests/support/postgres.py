"""A real PostgreSQL server for the suite: started once per session on a free loopback port in a temp dir,
with one database per test module. Debian's `postgresql` package provides it (`make test` installs it where
it is missing). initdb and postgres refuse to run as root, so as root they run as the `postgres` user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import free_port

SUPERUSER = "rolecall"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    def __init__(self, bin_path: Path, root: Path, port: int) -> None:
        self.bin = bin_path
        self.root = root
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        data = self.root / "data"
        run = [str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"]
        subprocess.run(_as_owner(run), check=True, capture_output=True)
        settings = [
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
        ]  # fmt: skip
        command = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), *settings]
        log = open(self.root / "postgres.log", "wb")
        self._process = subprocess.Popen(_as_owner(command), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        probe = [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-q"]
        return subprocess.run(probe, check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        command = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name]
        subprocess.run(command, check=True, capture_output=True)
        return self.url(name)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # SIGTERM: smart shutdown once the tests' connections are gone
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server in a fresh temp dir, stopped and removed on exit."""
    bin_path = bin_dir()
    if bin_path is None:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="rolecall-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(bin_path, root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
