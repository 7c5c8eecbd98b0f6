"""Per-app API keys, stored only as SHA-256 hashes, revocable, each with the scopes it grants.

A key item holds ``scopes`` (a string set, see :data:`kairos.core.constants.SCOPES`). Items written before scopes
existed have none and grant every scope, which is what those keys could do when they were made.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call
from kairos.core.constants import SCOPES
from kairos.core.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "kairos_"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class DynamoApiKeyStore:
    """API keys in DynamoDB, keyed by the hash of the key; the key itself is never stored."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client = client

    def create(self, app_id: str, api_key: str | None = None, scopes: Iterable[str] = SCOPES) -> tuple[str, str]:
        """Create a key for an app; the key is shown once and only its hash is kept.

        Parameters
        ----------
        app_id
            The app the key belongs to.
        api_key
            The key itself (a random ``kairos_…`` key when omitted).
        scopes
            What the key may do (default: every scope).

        Returns
        -------
        tuple[str, str]
            The key id (to revoke it) and the key.

        Raises
        ------
        ValueError
            No scope, or one that is not in :data:`kairos.core.constants.SCOPES`.
        """
        granted = sorted(set(scopes))
        unknown = [s for s in granted if s not in SCOPES]
        if not granted or unknown:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(granted) or 'none'}")
        key = api_key or KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        key_id = digest[:12]
        call(
            self.client,
            "put_item",
            "API keys",
            TableName=self.table,
            Item={
                "key_hash": {"S": digest},
                "key_id": {"S": key_id},
                "app_id": {"S": app_id},
                "created_at": {"S": datetime.now(UTC).isoformat()},
                "revoked": {"BOOL": False},
                "scopes": {"SS": granted},
            },
        )
        return key_id, key

    def lookup(self, api_key: str) -> dict[str, Any] | None:
        """The app behind a valid, unrevoked key (``app_id``, ``key_id``, ``scopes``), else ``None``."""
        resp = call(
            self.client, "get_item", "API keys", TableName=self.table, Key={"key_hash": {"S": hash_key(api_key)}}
        )
        item = resp.get("Item")
        if not item or item.get("revoked", {}).get("BOOL", False):
            return None
        # A key made before scopes existed keeps every scope (see the module docstring).
        scopes = sorted(item["scopes"]["SS"]) if "scopes" in item else sorted(SCOPES)
        return {"app_id": item["app_id"]["S"], "key_id": item["key_id"]["S"], "scopes": scopes}

    def revoke(self, key_id: str) -> None:
        """Revoke a key by its id (the first 12 hex digits of its hash, shown at creation)."""
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table,
            FilterExpression="key_id = :k",
            ExpressionAttributeValues={":k": {"S": key_id}},
        ):
            for item in page.get("Items", []):
                self.client.update_item(
                    TableName=self.table,
                    Key={"key_hash": item["key_hash"]},
                    UpdateExpression="SET revoked = :t, revoked_at = :now",
                    ExpressionAttributeValues={
                        ":t": {"BOOL": True},
                        ":now": {"S": datetime.now(UTC).isoformat()},
                    },
                )
                return
        raise NotFoundError(f"no API key with id '{key_id}'")
