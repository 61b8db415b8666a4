"""Versioned schema migrations, run at every start, once per database however many instances start at once.

Each component (the store's own tables, and any other part of rolecall that keeps tables here, such as the
limits) lists its migrations with versions 1, 2, 3...; `schema_migrations` records what has run. All pending
migrations run in one transaction under a lock: PostgreSQL's advisory lock, SQLite's write lock (BEGIN
IMMEDIATE), so a second instance waits, then finds nothing left to do. A migration's steps must not depend on
the current table definitions changing later: version 1 may create tables from `schema.py`, later versions
alter them with explicit DDL."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from rolecall.store import schema

# Any constant shared by every rolecall instance on one PostgreSQL database ("rolecall" in ASCII).
_ADVISORY_LOCK = 0x726F6C6563616C6C


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of one component's schema: `apply` runs on a synchronous connection inside the transaction."""

    component: str
    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_store_tables(connection: Connection) -> None:
    tables = [schema.store_meta, schema.api_keys, schema.ledger]
    schema.metadata.create_all(connection, tables=tables)
    connection.execute(schema.store_meta.insert().values(name="keys_version", value=0))


STORE_MIGRATIONS: tuple[Migration, ...] = (Migration("store", 1, "api_keys, ledger, store_meta", _create_store_tables),)


def pending(applied: set[tuple[str, int]], migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations not yet applied, in order; refuses a component whose versions have a gap."""
    by_component: dict[str, list[Migration]] = {}
    for migration in migrations:
        by_component.setdefault(migration.component, []).append(migration)
    todo: list[Migration] = []
    for component, steps in by_component.items():
        versions = sorted(step.version for step in steps)
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"migrations of {component!r} must be numbered 1, 2, 3...: got {versions}")
        todo.extend(step for step in sorted(steps, key=lambda s: s.version) if (component, step.version) not in applied)
    return todo


async def migrate(connection: AsyncConnection, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply what is pending, inside the caller's transaction (which holds SQLite's write lock); the
    migrations that ran are returned."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    await connection.run_sync(lambda sync: schema.schema_migrations.create(sync, checkfirst=True))
    rows = await connection.execute(select(schema.schema_migrations.c.component, schema.schema_migrations.c.version))
    applied = {(component, version) for component, version in rows}
    todo = pending(applied, migrations)
    for migration in todo:
        await connection.run_sync(migration.apply)
        await connection.execute(
            schema.schema_migrations.insert().values(
                component=migration.component,
                version=migration.version,
                description=migration.description,
                applied_at=time.time(),
            )
        )
    return todo
