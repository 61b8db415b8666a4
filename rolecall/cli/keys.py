"""`rolecall keys create|list|show|revoke` and `rolecall usage`: straight on the configured database
(`database_url`, else the SQLite file in `data_dir`), with or without a server running. A running server
sees a change within a second."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from rolecall.service.key_options import key_limits
from rolecall.service.runtime import open_store, store_location
from rolecall.service.tenants import GROUPINGS, RefusedError, Tenants
from rolecall.settings import Settings

Service = TypeVar("Service")


def register(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="create, list, show and revoke API keys (in the configured database)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown this once)")
    create.add_argument("name")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (input + output) per minute")
    create.add_argument("--concurrency", type=int, help="requests in flight at once")
    create.add_argument("--quota-tokens", type=int, help="tokens per quota window (with --quota-window)")
    create.add_argument("--quota-window", help="the quota's rolling window: 5h, 90m, 1d...")
    create.add_argument("--models", help="comma-separated model names or globs it may use (default: all)")
    create.add_argument("--expires", help="refused from then on: 2026-12-31 (end of day, UTC) or an ISO time")
    actions.add_parser("list", help="every key, revoked ones too (never a secret)")
    show = actions.add_parser("show", help="one key's limits and state")
    show.add_argument("name")
    revoke = actions.add_parser("revoke", help="revoke a key (refused within a second on every instance)")
    revoke.add_argument("name")
    for parser in actions.choices.values():
        parser.add_argument("--config", help="TOML config file (ROLECALL_CONFIG)")
        parser.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(run=run_keys)

    usage = commands.add_parser("usage", help="requests and tokens from the ledger, per key, model or day")
    usage.add_argument("--key", help="only this key (its name; config keys are config:<key id>)")
    usage.add_argument("--since", help="from then on: 2026-11-01, an ISO time, or a span back from now (24h, 7d)")
    usage.add_argument("--by", choices=GROUPINGS, default="key", help="group by (default key)")
    usage.add_argument("--config", help="TOML config file (ROLECALL_CONFIG)")
    usage.add_argument("--json", action="store_true", help="print JSON: a list of groups")
    usage.set_defaults(run=run_usage)


def with_store(
    args: argparse.Namespace, facade: Callable[[Any], Service], work: Callable[[Service], Awaitable[int]]
) -> int:
    """Run `work` on `facade` (`Tenants`, `BatchDesk.on`) over the configured store; configuration, store and
    refused requests (no such key or batch, a bad option) end in one line on stderr."""
    try:
        settings = Settings(**({"config": args.config} if args.config else {}))
    except (ValidationError, ValueError) as exc:
        print(f"rolecall: invalid configuration: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        database = await open_store(settings)
        try:
            return await work(facade(database))
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except RefusedError as exc:
        print(f"rolecall: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database: unreachable, refused, not what database_url says
        print(store_failure(settings, exc), file=sys.stderr)
        return 2


def store_failure(settings: Settings, exc: Exception) -> str:
    """The one line a command prints when the configured database cannot be used, and what to check."""
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return (
        f"rolecall: cannot use the store at {store_location(settings)}: {reason}; "
        "check database_url (ROLECALL_DATABASE_URL) and that the database is up"
    )


def run_keys(args: argparse.Namespace) -> int:
    async def work(tenants: Tenants) -> int:
        if args.action == "create":
            limits = key_limits(
                rpm=args.rpm,
                tpm=args.tpm,
                concurrency=args.concurrency,
                quota_tokens=args.quota_tokens,
                quota_window=args.quota_window,
                models=args.models,
                expires=args.expires,
            )
            view, secret = await tenants.create(args.name, limits)
            if args.json:
                print(json.dumps({**view, "key": secret}, indent=2))
            else:
                print(secret)
                print(
                    f"key {view['name']} created ({_limits_text(view)}); this is the only time it is shown",
                    file=sys.stderr,
                )
            return 0
        if args.action == "list":
            views = await tenants.all()
            print(json.dumps(views, indent=2) if args.json else _key_table(views))
            return 0
        view = await (tenants.show(args.name) if args.action == "show" else tenants.revoke(args.name))
        print(json.dumps(view, indent=2) if args.json else _key_table([view]))
        return 0

    return with_store(args, Tenants, work)


def run_usage(args: argparse.Namespace) -> int:
    async def work(tenants: Tenants) -> int:
        groups = await tenants.usage(args.by, args.key, args.since)
        print(json.dumps(groups, indent=2) if args.json else _usage_table(groups, args.by))
        return 0

    return with_store(args, Tenants, work)


def _limits_text(view: dict[str, Any]) -> str:
    parts = [f"{name} {view[name]}" for name in ("rpm", "tpm", "concurrency") if view[name] is not None]
    if view["quota_tokens"] is not None:
        parts.append(f"quota {view['quota_tokens']} tokens / {view['quota_window_seconds']} s")
    if view["models"]:
        parts.append("models " + ",".join(view["models"]))
    if view["expires_at"]:
        parts.append(f"expires {view['expires_at']}")
    return ", ".join(parts) or "no limits"


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart (the operator commands' tables)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _key_table(views: list[dict[str, Any]]) -> str:
    if not views:
        return "no keys yet: rolecall keys create NAME"
    rows = [[v["name"], v["key_id"], v["state"], v["created_at"], _limits_text(v)] for v in views]
    return table(["NAME", "KEY ID", "STATE", "CREATED", "LIMITS"], rows)


def _usage_table(groups: list[dict[str, Any]], by: str) -> str:
    if not groups:
        return "no requests in the ledger for this selection"
    columns = ["requests", "input_tokens", "cached_tokens", "output_tokens"]
    rows = [[str(g[by] if g[by] is not None else "-"), *(str(g[c]) for c in columns)] for g in groups]
    totals = ["total", *(str(sum(g[c] for g in groups)) for c in columns)]
    return table([by.upper(), "REQUESTS", "INPUT", "CACHED", "OUTPUT"], [*rows, totals])
