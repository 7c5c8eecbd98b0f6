"""Operator commands: ``python -m kairos.admin create-key --app NAME --table TABLE`` and ``revoke-key``."""

from __future__ import annotations

import argparse
import os

from kairos.adapters.api_keys import DynamoApiKeyStore
from kairos.constants import ENV_API_KEYS_TABLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kairos.admin", description="Manage Kairos API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create a key for an app; the key is printed once")
    create.add_argument("--app", required=True, help="the app the key belongs to")
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
        key_id, key = store.create(args.app)
        print(f"key id: {key_id}\napi key: {key}\n(store it now: only its hash is kept)")
    else:
        store.revoke(args.key_id)
        print(f"revoked {args.key_id} (cached authorizations expire within AuthorizerCacheSeconds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
