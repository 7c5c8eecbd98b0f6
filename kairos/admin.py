"""Operator commands: ``python -m kairos.admin create-key --app NAME --scope SCOPE [--scope ...] --table TABLE``
and ``revoke-key``."""

from __future__ import annotations

import argparse
import os

from kairos.core.constants import ENV_API_KEYS_TABLE
from kairos.customers.schemas import SCOPES
from kairos.http.adapters.api_keys import DynamoApiKeyStore


def parse_scopes(values: list[str]) -> list[str]:
    """``--scope`` values (repeated or comma-separated, ``all`` for every scope) as a sorted list of scopes.

    Raises
    ------
    ValueError
        A value that is not a scope.
    """
    names = {v.strip() for value in values for v in value.split(",") if v.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(SCOPES)
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; choose among {', '.join(SCOPES)} or all")
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kairos.admin", description="Manage Kairos API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create a key for an app; the key is printed once")
    create.add_argument("--app", required=True, help="the app the key belongs to")
    # No default: an operator says what a key may do, so a key for an event tracker cannot erase customers.
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        help=f"what the key may do, repeatable or comma-separated: {', '.join(SCOPES)}, or all",
    )
    revoke = sub.add_parser("revoke-key", help="revoke a key by the id printed at creation")
    revoke.add_argument("key_id")
    for p in (create, revoke):
        p.add_argument(
            "--table",
            default=os.environ.get(ENV_API_KEYS_TABLE),
            help="the ApiKeysTableName output of the stack (or $API_KEYS_TABLE_NAME)",
        )
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("--table is required (the stack output ApiKeysTableName)")
    store = DynamoApiKeyStore(args.table)
    if args.command == "create-key":
        try:
            scopes = parse_scopes(args.scope)
        except ValueError as exc:
            parser.error(str(exc))
        key_id, key = store.create(args.app, scopes=scopes)
        print(f"key id: {key_id}\nscopes: {' '.join(scopes)}\napi key: {key}\n(store it now: only its hash is kept)")
    else:
        store.revoke(args.key_id)
        print(f"revoked {args.key_id} (cached authorizations expire within AuthorizerCacheSeconds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
