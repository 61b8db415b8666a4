"""The store's tables (SQLAlchemy Core). Times are UTC epoch seconds as doubles: one representation that
SQLite and PostgreSQL compare, sort and group alike."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL's ledger outgrows 32 bits.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

# Which migrations have run, per component ("store", and whatever adds its own tables through migrations.py).
schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("component", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
    PrimaryKeyConstraint("component", "version"),
)

# Small counters shared by every instance; `keys_version` goes up with each change to `api_keys`, so an
# instance learns of a new, revoked or changed key by reading one row.
store_meta = Table(
    "store_meta",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("key_hash", Text, nullable=False, unique=True),  # sha256 hex of the key; the key itself is never kept
    Column("key_id", Text, nullable=False),  # its first hex digits, a name for logs that reveals nothing
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double),
    Column("revoked_at", Double),
    Column("requests_per_minute", Integer),
    Column("tokens_per_minute", BigInteger),
    Column("concurrency", Integer),
    Column("quota_tokens", BigInteger),
    Column("quota_window_seconds", Integer),
    Column("models", Text, nullable=False, server_default=""),  # comma-separated globs; empty: every model
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),  # when the request arrived
    Column("request_id", Text, nullable=False),
    Column("key", Text),  # Caller.label; NULL when the request named no valid key (a 401)
    Column("door", Text, nullable=False),  # anthropic | openai | minimax
    Column("model_asked", Text),
    Column("model_served", Text),
    Column("input_tokens", BigInteger, nullable=False),  # prompt tokens computed (Anthropic's input_tokens)
    Column("cached_tokens", BigInteger, nullable=False),  # prompt tokens read from the prefix cache
    Column("output_tokens", BigInteger, nullable=False),
    Column("stop_reason", Text),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Index("ledger_at", "at"),
    Index("ledger_key_at", "key", "at"),
)
