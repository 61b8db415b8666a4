"""Opening the store: the URL of either backend, the connection setup each needs, migrations at start.

SQLite: `sqlite:///path` (rolecall's default is `data_dir/rolecall.db`), WAL journal with synchronous=NORMAL:
a committed transaction survives the process being killed (only an OS crash or power loss can lose the last
ones), and readers never wait for the writer. Every transaction starts with BEGIN IMMEDIATE, which takes the
write lock up front, so two writers queue on `busy_timeout` instead of failing half-way.
PostgreSQL: `postgresql://user:pass@host/db`, through asyncpg, for several instances sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rolecall.store.migrations import STORE_MIGRATIONS, Migration, migrate

SQLITE_FILE = "rolecall.db"
BUSY_TIMEOUT_MS = 10_000
_POLL_TIMEOUT = 10.0  # seconds for a poll's read on PostgreSQL (connecting included)


def database_url(configured: str | None, data_dir: Path) -> str:
    """The configured URL, else the SQLite file in `data_dir`."""
    return configured or f"sqlite:///{Path(data_dir).expanduser() / SQLITE_FILE}"


def public(url: str) -> str:
    """The URL fit for logs: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _driver_url(url: str) -> tuple[str, Literal["sqlite", "postgresql"]]:
    """`sqlite:///…` / `postgresql://…` (or `postgres://…`) as SQLAlchemy's async drivers spell them."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database_url {public(url)!r} is not a URL: use sqlite:///PATH or postgresql://HOST/DB")
    base = scheme.split("+")[0].lower()
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}", "sqlite"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}", "postgresql"
    raise ValueError(f"database_url {public(url)!r}: rolecall stores into sqlite:///PATH or postgresql://HOST/DB")


class Database:
    """One connection pool to the store. `transaction()` for reads and writes; `close()` when done."""

    def __init__(self, engine: AsyncEngine, kind: Literal["sqlite", "postgresql"], url: str) -> None:
        self.engine = engine
        self.kind = kind
        self.url = url
        self._quick: sqlite3.Connection | None = None  # SQLite: see `read_row`
        self._polls: asyncpg.Connection | None = None  # PostgreSQL: see `read_row`
        self._polls_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, migrations: Sequence[Migration] = STORE_MIGRATIONS) -> Database:
        """Connect (creating the SQLite file and its folder on first start) and run pending migrations."""
        driver_url, kind = _driver_url(url)
        if kind == "sqlite":
            engine = _sqlite_engine(driver_url)
        else:
            engine = create_async_engine(driver_url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        database = cls(engine, kind, url)
        try:
            async with database.transaction() as connection:
                await migrate(connection, migrations)
        except BaseException:
            await engine.dispose()
            raise
        return database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed when the block ends (rolled back on error)."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that only reads: on SQLite it takes no write lock, so it never waits for the ledger's
        writer (WAL readers see the last committed state)."""
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(rolecall_read_only=True)
            async with connection.begin():
                yield connection

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file, for a writer that opens its own connection; None on PostgreSQL."""
        return make_url(self.engine.url).database if self.kind == "sqlite" else None

    async def read_row(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of a one-row read for the background polls (keys_version twice a second, the batch
        runner's look for open batches once a second), on a connection kept for them. Through the pool each read
        cost milliseconds of CPU (SQLAlchemy, a check-out, BEGIN and COMMIT; on SQLite also aiosqlite's thread
        hops): over 20 ms a second for an idle server.

        SQLite: run right on the event loop, microseconds. It never waits: where another process holds the file
        locked, the read goes through the pool instead. PostgreSQL: one round trip on an asyncpg connection of its
        own (the polls take turns on it), opened again if it died."""
        if self.kind == "sqlite":
            if self._quick is None:
                path = self.sqlite_path
                assert path is not None
                self._quick = sqlite_connect(path)
                self._quick.execute("PRAGMA busy_timeout=0")
            try:
                row: tuple[Any, ...] | None = self._quick.execute(sql).fetchone()
                return row
            except sqlite3.OperationalError:  # locked: the pool's connections wait out the busy timeout
                async with self.reading() as connection:
                    found = (await connection.exec_driver_sql(sql)).first()
                return None if found is None else tuple(found)
        async with self._polls_lock:
            try:
                return await self._poll(sql)
            except Exception:
                if self._polls is None or not self._polls.is_closed():
                    raise
            return await self._poll(sql)  # the connection died (a restarted server, a failover): on a new one

    async def _poll(self, sql: str) -> tuple[Any, ...] | None:
        if self._polls is None or self._polls.is_closed():
            self._polls = await asyncpg.connect(self.postgres_dsn, timeout=_POLL_TIMEOUT)
        found = await self._polls.fetchrow(sql, timeout=_POLL_TIMEOUT)
        return None if found is None else tuple(found)

    @property
    def postgres_dsn(self) -> str:
        """The URL as asyncpg itself takes it (for a connection outside the pool)."""
        return "postgresql://" + self.url.partition("://")[2]

    async def close(self) -> None:
        if self._quick is not None:
            self._quick.close()
            self._quick = None
        if self._polls is not None:
            with contextlib.suppress(Exception):  # a dead connection has nothing left to close
                await self._polls.close(timeout=5)
            self._polls = None
        await self.engine.dispose()


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as the pool's are (the ledger's writer keeps its own, outside the pool)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    _pragmas(connection)
    return connection


def _pragmas(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_engine(driver_url: str) -> AsyncEngine:
    path = make_url(driver_url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_async_engine(driver_url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _setup(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is off: SQLAlchemy's "begin" below issues BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        _pragmas(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get("rolecall_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
