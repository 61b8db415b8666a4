"""`rolecall batches list|show|results|cancel`: every key's Message Batches, straight on the configured store
(`database_url`, else the SQLite file in `data_dir`), as `rolecall keys` reads it, with or without a server
running. A cancel is picked up by the server that runs the batch."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import IO, Any

from rolecall.app.batches import batch_view, results_file
from rolecall.cli.keys import table, with_store
from rolecall.service.batches import BatchDesk


def register(commands: argparse._SubParsersAction) -> None:
    batches = commands.add_parser("batches", help="list, show, cancel Message Batches and save their results")
    actions = batches.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every key's batches, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (1-1000, default 20)")
    listing.add_argument("--after-id", help="the page after this batch (older ones)")
    listing.add_argument("--json", action="store_true", help="print JSON: the API's list page, with owners")
    show = actions.add_parser("show", help="one batch as the API shows it, with its owner (JSON)")
    show.add_argument("id")
    results = actions.add_parser("results", help="an ended batch's results file (JSONL)")
    results.add_argument("id")
    results.add_argument("--output", "-o", type=Path, help="write it to this file (default: stdout)")
    cancel = actions.add_parser("cancel", help="cancel a batch: what has not started ends canceled")
    cancel.add_argument("id")
    for parser in actions.choices.values():
        parser.add_argument("--config", help="TOML config file (ROLECALL_CONFIG)")
    batches.set_defaults(run=run_batches)


def run_batches(args: argparse.Namespace) -> int:
    async def work(desk: BatchDesk) -> int:
        if args.action == "list":
            records, more = await desk.page(None, limit=args.limit, before_id=None, after_id=args.after_id)
            views = [_view(record) for record in records]
            if args.json:
                last = views[-1]["id"] if views else None
                print(json.dumps({"data": views, "has_more": more, "last_id": last}, indent=2))
            else:
                print(_batch_table(views, more, args.limit))
            return 0
        if args.action == "results":
            return await _save_results(desk, args.id, args.output)
        record = await (desk.get(None, args.id) if args.action == "show" else desk.cancel(None, args.id))
        print(json.dumps(_view(record), indent=2))
        return 0

    return with_store(args, BatchDesk.on, work)


async def _save_results(desk: BatchDesk, batch_id: str, output: Path | None) -> int:
    results = desk.results(None, batch_id)
    first = await anext(aiter(results), None)  # a missing or unfinished batch: nothing is written
    chunks = results_file(results, first)
    try:
        if output is None:
            await _write(chunks, sys.stdout.buffer)
            return 0
        with output.open("wb") as file:
            count = await _write(chunks, file)
    except OSError as exc:  # a full disk, a closed pipe (`| head`): the file is not whole, say so
        print(f"rolecall: cannot write {output or 'to stdout'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{count} results of {batch_id} written to {output}", file=sys.stderr)
    return 0


async def _write(chunks: AsyncGenerator[bytes, None], file: IO[bytes]) -> int:
    lines = 0
    async for chunk in chunks:
        file.write(chunk)
        lines += chunk.count(b"\n")
    file.flush()
    return lines


def _view(record: Any) -> dict[str, Any]:
    """The API's batch object (its results_url as a path on the server) and, for the operator, its owner."""
    return {**batch_view(record), "owner": record.owner}


def _batch_table(views: list[dict[str, Any]], more: bool, limit: int) -> str:
    if not views:
        return "no message batches yet: clients create them with POST /v1/messages/batches"
    kinds = ("succeeded", "errored", "canceled", "expired")
    rows = [
        [
            view["id"],
            view["owner"],
            view["processing_status"],
            str(sum(view["request_counts"].values())),
            *(str(view["request_counts"][kind]) for kind in kinds),
            view["created_at"][:19].replace("T", " "),
        ]
        for view in views
    ]
    lines = table(["ID", "OWNER", "STATUS", "REQUESTS", *map(str.upper, kinds), "CREATED (UTC)"], rows)
    if more:
        lines += f"\nmore: rolecall batches list --limit {limit} --after-id {views[-1]['id']}"
    return lines
