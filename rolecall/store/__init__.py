"""Durable state: API keys and the usage ledger, in SQLite (the default, a file in `data_dir`) or PostgreSQL
(several instances), behind one SQLAlchemy Core layer. Imports only `core`; the service drives it."""
