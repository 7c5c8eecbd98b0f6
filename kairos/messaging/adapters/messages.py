"""The message log: one DynamoDB record per message id, every outcome archived to S3 for retraining.

Table: partition key ``message_id``; the index ``by_customer`` (``customer_id``, ``claimed_at``) holds every
message of a customer, for frequency caps and erasure; ``expires_at`` is the TTL, past the archived attempts'
expiry. Archive:
``messages/dt=YYYY-MM-DD/<campaign_id>/<message_id>.<attempt>.jsonl.gz``, one object per attempt's outcome
(sent, failed, skipped, throttled, unavailable), so a retry never overwrites what an earlier attempt saw.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call, from_item, to_item
from kairos.core.errors import ConflictError, StoreError
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.customers.adapters.archive import encode_lines
from kairos.messaging.domain import IN_FLIGHT, TRANSIENT
from kairos.messaging.ports import MessageLog

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

ARCHIVE_PREFIX = "messages"
BY_CUSTOMER_INDEX = "by_customer"
BY_CAMPAIGN_INDEX = "by_campaign"
ARCHIVE_EXPIRY_MARGIN = timedelta(days=7)


class DynamoMessageLog(MessageLog):
    """The message log in DynamoDB, with every attempt's outcome archived in S3."""

    ddb = LazyClient("dynamodb", STORE_RETRIES)
    s3 = LazyClient("s3", STORE_RETRIES)

    def __init__(
        self,
        table: str,
        bucket: str,
        dynamodb: DynamoDBClient | None = None,
        s3: S3Client | None = None,
        archive_retention_days: int = 400,
    ) -> None:
        self.table = table
        self.bucket = bucket
        self.ddb = dynamodb
        self.s3 = s3
        self.archive_retention = timedelta(days=archive_retention_days)

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.ddb, op, "message log", **kwargs)

    def get(self, message_id: str) -> dict[str, Any] | None:
        item = self._call(
            "get_item", TableName=self.table, Key={"message_id": {"S": message_id}}, ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    def claim(self, record: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        record["attempt"] = 1
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(message_id)",
            )
            return True, None
        except ConflictError:
            pass
        existing = self.get(record["message_id"])
        if existing is None:  # erased between the two calls: a later retry claims it
            raise StoreError(f"message {record['message_id']} vanished while being claimed")
        if existing.get("status") not in TRANSIENT:
            return False, existing
        # An earlier attempt was throttled or met an outage: this attempt takes over, exactly one of any racers.
        record["attempt"] = int(existing.get("attempt") or 1) + 1
        try:
            self._call(
                "update_item",
                TableName=self.table,
                Key={"message_id": {"S": record["message_id"]}},
                UpdateExpression="SET #s = :sending, attempt = :a, claimed_at = :t",
                ConditionExpression="#s = :was AND attempt = :prev",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":a": {"N": str(record["attempt"])},
                    ":t": {"S": record["claimed_at"]},
                    ":was": {"S": existing["status"]},
                    ":prev": {"N": str(existing.get("attempt") or 1)},
                },
            )
        except ConflictError:
            return False, self.get(record["message_id"]) or existing
        return True, None

    def _outlive_archive(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record, kept at least as long as the archived attempt it is about to write: an erasure finds the
        archived attempts through the record (the bucket's lifecycle counts from the object's creation, rounds up
        to midnight UTC and removes it some time after)."""
        until = parse_ts(record["finished_at"]) + self.archive_retention + ARCHIVE_EXPIRY_MARGIN
        return {**record, "expires_at": max(int(record.get("expires_at") or 0), int(until.timestamp()))}

    def finish(self, record: dict[str, Any]) -> None:
        record = self._outlive_archive(record)
        self._call("put_item", TableName=self.table, Item=to_item(record))
        self.archive(record)

    def settle(self, record: dict[str, Any], attempt: int) -> bool:
        record = self._outlive_archive(record)
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression="#s = :sending AND attempt = :a",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":sending": {"S": IN_FLIGHT}, ":a": {"N": str(attempt)}},
            )
        except ConflictError:
            return False
        self.archive(record)
        return True

    def archive(self, record: dict[str, Any]) -> None:
        date = parse_ts(record["finished_at"]).astimezone(UTC)
        key = (
            f"{ARCHIVE_PREFIX}/dt={date:%Y-%m-%d}/{record['campaign_id']}/"
            f"{record['message_id']}.{record.get('attempt', 1)}.jsonl.gz"
        )
        call(self.s3, "put_object", "message archive", Bucket=self.bucket, Key=key, Body=encode_lines([record]))

    def sent_since(self, customer_id: str, channel: str, since: datetime, excluding: str | None = None) -> int:
        # Counted by claim time: whatever may have reached the customer (sent, unconfirmed, being sent).
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_CUSTOMER_INDEX,
            "KeyConditionExpression": "customer_id = :c AND claimed_at >= :since",
            "FilterExpression": "channel = :ch AND #s IN (:sent, :unconfirmed, :sending) AND message_id <> :me",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":c": {"S": customer_id},
                ":since": {"S": utc_iso(since)},
                ":ch": {"S": channel},
                ":sent": {"S": "sent"},
                ":unconfirmed": {"S": "unconfirmed"},
                ":sending": {"S": IN_FLIGHT},
                ":me": {"S": excluding or ""},
            },
            "Select": "COUNT",
        }
        return sum(int(page.get("Count", 0)) for page in self._query_pages(kwargs))

    def recent_sends(
        self, customer_id: str, since: datetime, excluding: str | None = None
    ) -> list[tuple[str, datetime]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_CUSTOMER_INDEX,
            "KeyConditionExpression": "customer_id = :c AND claimed_at >= :since",
            "FilterExpression": "#s IN (:sent, :unconfirmed, :sending) AND message_id <> :me",
            "ProjectionExpression": "channel, claimed_at",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":c": {"S": customer_id},
                ":since": {"S": utc_iso(since)},
                ":sent": {"S": "sent"},
                ":unconfirmed": {"S": "unconfirmed"},
                ":sending": {"S": IN_FLIGHT},
                ":me": {"S": excluding or ""},
            },
        }
        out = []
        for page in self._query_pages(kwargs):
            for item in page.get("Items", []):
                at = parse_ts(item["claimed_at"]["S"])
                if at is not None:
                    out.append((item["channel"]["S"], at))
        return out

    def for_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every message of a campaign or journey (its ``campaign_id``), from the ``by_campaign`` index."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_CAMPAIGN_INDEX,
            "KeyConditionExpression": "campaign_id = :c",
            "ExpressionAttributeValues": {":c": {"S": campaign_id}},
        }
        return [from_item(i) for page in self._query_pages(kwargs) for i in page.get("Items", [])]

    def for_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Every message of a customer, whatever its outcome (erasure and support)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_CUSTOMER_INDEX,
            "KeyConditionExpression": "customer_id = :c",
            "ExpressionAttributeValues": {":c": {"S": customer_id}},
        }
        return [from_item(i) for page in self._query_pages(kwargs) for i in page.get("Items", [])]

    def _query_pages(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call("query", **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def erase_customer(self, customer_id: str) -> tuple[int, int]:
        """Delete a customer's messages and their archived attempts; returns (records, objects).

        Each record goes after its archived attempts, so an erasure interrupted half-way and run again still
        finds what is left. Objects are matched by exact key (``<message id>.<attempt>.jsonl.gz``): message ids
        that prefix each other (customer ``c`` and customer ``c.0``) never touch each other's objects.
        """
        records = self.for_customer(customer_id)
        objects = 0
        for rec in records:
            objects += self._delete_archived(rec)
            self._call("delete_item", TableName=self.table, Key={"message_id": {"S": rec["message_id"]}})
        return len(records), objects

    def _delete_archived(self, rec: dict[str, Any]) -> int:
        first = _day(rec.get("claimed_at"))
        last = _day(rec.get("finished_at")) or _day(rec.get("updated_at")) or first
        if first is None or last is None:
            return 0
        own = re.compile(re.escape(rec["message_id"]) + r"\.\d+\.jsonl\.gz")
        deleted = 0
        day = first
        while day <= last + timedelta(days=1):  # attempts of one message span the days its retries took
            folder = f"{ARCHIVE_PREFIX}/dt={day:%Y-%m-%d}/{rec['campaign_id']}/"
            listed = call(
                self.s3, "list_objects_v2", "message archive", Bucket=self.bucket, Prefix=folder + rec["message_id"]
            )
            for obj in listed.get("Contents", []):
                if own.fullmatch(obj["Key"][len(folder) :]):
                    call(self.s3, "delete_object", "message archive", Bucket=self.bucket, Key=obj["Key"])
                    deleted += 1
            day += timedelta(days=1)
        return deleted


def _day(value: Any) -> date | None:
    return parse_ts(value).astimezone(UTC).date() if value else None
