"""`taskflow keys create|list|revoke`: the API keys, in the database itself (decision 30).

Not through the API: the first key cannot be made over HTTP once it would be needed. These
commands use ``TASKFLOW_DATABASE_URL`` as the API does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from taskflow.config import Settings
from taskflow.containers import build_container
from taskflow.domain.errors import KeyNotFound
from taskflow.domain.keys import DEFAULT_TENANT, ApiKey, Scope, parse_scopes
from taskflow.domain.services.keys import KeyService
from taskflow.entrypoints.cli_api import CommandFailed, Exit
from taskflow.entrypoints.cli_args import add_json
from taskflow.entrypoints.cli_output import cell, print_json, print_table
from taskflow.registry import Registry

T = TypeVar("T")
SHOWN = ("id", "name", "prefix", "scopes", "tenant", "created_at", "revoked_at")


def add_keys_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="make, list and revoke API keys (in the database)")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="make a key and print it, once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--scopes",
        required=True,
        type=_scopes,
        help="comma-separated: submit, read, admin (admin includes the others)",
    )
    create.add_argument("--tenant", default=DEFAULT_TENANT, help="default: default")
    create.set_defaults(run=_create)

    listing = actions.add_parser("list", help="every key, revoked ones too; never the key")
    add_json(listing, "the keys")
    listing.set_defaults(run=_list)

    revoke = actions.add_parser("revoke", help="stop a key, on every API within a second")
    revoke.add_argument("key_id", metavar="ID", type=_key_id, help="the key's id (keys list)")
    revoke.set_defaults(run=_revoke)


def _scopes(raw: str) -> frozenset[Scope]:
    try:
        return parse_scopes(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _key_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a key id is a UUID, got {raw!r}") from None


def _create(args: argparse.Namespace) -> int:
    async def create(keys: KeyService) -> tuple[ApiKey, str]:
        return await keys.create(name=args.name, scopes=args.scopes, tenant=args.tenant)

    try:
        key, secret = _with_keys(create)
    except ValueError as exc:
        raise CommandFailed(str(exc), Exit.USAGE) from None
    print(f"id: {key.id}")
    print(f"key: {secret}")
    print("Keep the key now: it is stored hashed and never shown again.", file=sys.stderr)
    return Exit.OK


def _list(args: argparse.Namespace) -> int:
    async def listed(keys: KeyService) -> list[ApiKey]:
        return await keys.list()

    rows = [_row(key) for key in _with_keys(listed)]
    if args.json:
        print_json({"items": rows})
    else:
        print_table(SHOWN, [[cell(row[c]) for c in SHOWN] for row in rows])
    return Exit.OK


def _revoke(args: argparse.Namespace) -> int:
    async def revoke(keys: KeyService) -> ApiKey:
        return await keys.revoke(args.key_id)

    try:
        key = _with_keys(revoke)
    except KeyNotFound:
        raise CommandFailed(f"no API key has the id {args.key_id}") from None
    print(f"revoked {key.id} ({key.name})")
    return Exit.OK


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": ",".join(sorted(key.scopes)),
        "tenant": key.tenant,
        "created_at": _instant(key.created_at),
        "revoked_at": None if key.revoked_at is None else _instant(key.revoked_at),
    }


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as the API writes its timestamps


def _with_keys(call: Callable[[KeyService], Awaitable[T]]) -> T:
    container = build_container(Settings.from_env(), Registry())

    async def run() -> T:
        try:
            return await call(container.key_service())
        finally:
            await container.engine().dispose()

    return asyncio.run(run())
