"""DynamoDB adapter for events, engagement moments and customers.

Tables (both from ``template.yaml``):

- events table, key ``customer_id`` + ``sk``: ``e#<event_id>`` holds one accepted event (the archive record as
  JSON), ``m#<epoch hour>`` / ``p#<epoch hour>`` marks an engagement / purchase moment already counted in the
  aggregates. Both expire with the event retention (TTL attribute ``expires_at``).
- customers table, key ``customer_id``: the profile, the aggregates and their optimistic-lock ``version``.

Every accepted event, its new moments and its customer's new aggregates are written in one transaction with
conditions (event and moment absent, customer version unchanged), so a retried or concurrent batch can neither
store an event twice nor count it twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from kairos.adapters.aws import STORE_RETRIES, LazyClient, call
from kairos.aggregates import CustomerAggregates
from kairos.domain.customers import CustomerRecord, IngestState
from kairos.errors import ConflictError, ThrottledError
from kairos.ports import CustomerStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient

    from kairos.domain.customers import CustomerWrite

MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25

_ser = TypeSerializer()
_deser = TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """Make a JSON-like value storable: floats become Decimals (DynamoDB has no binary floats)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Decimals back to int or float, for JSON and for the fold."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [from_dynamo(v) for v in value]
    return value


def to_item(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(to_dynamo(v)) for k, v in obj.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_dynamo(_deser.deserialize(v)) for k, v in item.items()}


def event_sk(event_id: str) -> str:
    return f"e#{event_id}"


class DynamoStore(CustomerStore):
    """Events and customers in DynamoDB.

    Parameters
    ----------
    events_table, customers_table
        Physical table names.
    client
        A boto3 DynamoDB client; created lazily when omitted.
    retention_seconds
        How long events and moment markers live (their TTL).
    """

    client = LazyClient("dynamodb", STORE_RETRIES)
    max_transaction_items = MAX_TRANSACTION_ITEMS

    def __init__(
        self,
        events_table: str,
        customers_table: str,
        client: DynamoDBClient | None = None,
        retention_seconds: int = 400 * 86400,
    ) -> None:
        self.events_table = events_table
        self.customers_table = customers_table
        self.client = client
        self.retention_seconds = retention_seconds
        self.request_count = 0  # DynamoDB API calls made, for benchmarks

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        self.request_count += 1
        return call(self.client, op, "DynamoDB", **kwargs)

    # ---------------------------------------------------------------- reads

    def _batch_get(self, keys: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """BatchGetItem over any number of keys, 100 a call, retrying unprocessed keys with backoff."""
        flat = [(table, key) for table, ks in keys.items() for key in ks]
        for start in range(0, len(flat), MAX_BATCH_GET_KEYS):
            request: dict[str, Any] = {}
            for table, key in flat[start : start + MAX_BATCH_GET_KEYS]:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            attempt = 0
            while request:
                resp = self._call("batch_get_item", RequestItems=request)
                for table, items in resp.get("Responses", {}).items():
                    for item in items:
                        yield table, item
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    if attempt > 8:
                        raise ThrottledError("DynamoDB kept keys unprocessed")
                    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())

    def load_ingest_state(
        self, customer_ids: Iterable[str], event_keys: Iterable[tuple[str, str]], moment_keys: Iterable[tuple[str, str]]
    ) -> IngestState:
        """Read, consistently, what ingestion must know: customers, which events and moments exist."""
        cids = sorted(set(customer_ids))
        keys = {
            self.customers_table: [{"customer_id": {"S": c}} for c in cids],
            self.events_table: [{"customer_id": {"S": c}, "sk": {"S": event_sk(e)}} for c, e in sorted(set(event_keys))]
            + [{"customer_id": {"S": c}, "sk": {"S": m}} for c, m in sorted(set(moment_keys))],
        }
        keys = {t: k for t, k in keys.items() if k}
        customers = {c: CustomerRecord(c) for c in cids}
        events: set[tuple[str, str]] = set()
        moments: set[tuple[str, str]] = set()
        for table, raw in self._batch_get(keys):
            if table == self.customers_table:
                rec = self._record(raw)
                customers[rec.customer_id] = rec
            else:
                cid, sk = raw["customer_id"]["S"], raw["sk"]["S"]
                if sk.startswith("e#"):
                    events.add((cid, sk[2:]))
                else:
                    moments.add((cid, sk))
        return IngestState(customers, events, moments)

    def _record(self, raw: dict[str, Any]) -> CustomerRecord:
        doc = from_item(raw)
        return CustomerRecord(
            customer_id=doc["customer_id"],
            version=int(doc.get("version", 0)),
            exists=True,
            aggregates=CustomerAggregates.from_dict(doc.get("agg")),
            profile=doc.get("profile"),
            recommendation=doc.get("recommendation"),
            updated_at=doc.get("updated_at"),
            consent_at=doc.get("consent_at"),
        )

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        resp = self._call(
            "get_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ConsistentRead=True,
        )
        return self._record(resp["Item"]) if "Item" in resp else None

    def _query_sks(self, customer_id: str, prefix: str | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.events_table,
            "ConsistentRead": True,
            "KeyConditionExpression": "customer_id = :c",
            "ExpressionAttributeValues": {":c": {"S": customer_id}},
        }
        if prefix:
            kwargs["KeyConditionExpression"] += " AND begins_with(sk, :p)"
            kwargs["ExpressionAttributeValues"][":p"] = {"S": prefix}
        while True:
            resp = self._call("query", **kwargs)
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def message_events(self, customer_id: str, message_prefix: str) -> list[dict[str, Any]]:
        """The customer's stored events whose ``message_id`` starts with ``message_prefix`` (type and time)."""
        kwargs: dict[str, Any] = {
            "TableName": self.events_table,
            "ConsistentRead": True,
            "KeyConditionExpression": "customer_id = :c AND begins_with(sk, :e)",
            "FilterExpression": "begins_with(message_id, :m)",
            "ProjectionExpression": "#t, ts, message_id",
            "ExpressionAttributeNames": {"#t": "type"},
            "ExpressionAttributeValues": {":c": {"S": customer_id}, ":e": {"S": "e#"}, ":m": {"S": message_prefix}},
        }
        out = []
        while True:
            resp = self._call("query", **kwargs)
            out += [from_item(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def engagement_moments(self, customer_id: str) -> list[int]:
        """Every engagement moment (UTC epoch hour) still stored for a customer."""
        return sorted(int(item["sk"]["S"][2:]) for item in self._query_sks(customer_id, "m#"))

    def customer_events(self, customer_id: str) -> list[dict[str, Any]]:
        """The stored events of a customer, in the archive form."""
        return [json.loads(item["record"]["S"]) for item in self._query_sks(customer_id, "e#")]

    # ---------------------------------------------------------------- writes

    def _customer_condition(self, record: CustomerRecord) -> dict[str, Any]:
        if record.exists:
            return {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(record.version)}},
            }
        return {"ConditionExpression": "attribute_not_exists(customer_id)", "ExpressionAttributeValues": {}}

    def commit_ingest(self, writes: list[CustomerWrite], now: datetime) -> None:
        """Write events, moments and aggregates of several customers in one transaction.

        Raises
        ------
        ConflictError
            An event or moment already exists, or a customer changed since it was read. Nothing was written.
        """
        items: list[dict[str, Any]] = []
        now_iso = now.isoformat()
        for w in writes:
            for ev in w.events:
                record = ev.to_record()
                items.append(
                    {
                        "Put": {
                            "TableName": self.events_table,
                            "Item": to_item(
                                {
                                    "customer_id": w.record.customer_id,
                                    "sk": event_sk(ev.event_id),
                                    "record": json.dumps(record, separators=(",", ":"), sort_keys=True),
                                    "type": ev.type,
                                    "message_id": ev.message_id,
                                    "ts": int(ev.timestamp.timestamp()),
                                    "expires_at": int(ev.timestamp.timestamp()) + self.retention_seconds,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    }
                )
            for m in w.moments:
                epoch_h = int(m.split("#", 1)[1])
                items.append(
                    {
                        "Put": {
                            "TableName": self.events_table,
                            "Item": to_item(
                                {
                                    "customer_id": w.record.customer_id,
                                    "sk": m,
                                    "expires_at": epoch_h * 3600 + self.retention_seconds,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    }
                )
            cond = self._customer_condition(w.record)
            values = {
                ":agg": _ser.serialize(to_dynamo(w.aggregates.to_dict())),
                ":next": {"N": str(w.record.version + 1)},
                ":now": {"S": now_iso},
                **cond["ExpressionAttributeValues"],
            }
            items.append(
                {
                    "Update": {
                        "TableName": self.customers_table,
                        "Key": {"customer_id": {"S": w.record.customer_id}},
                        "UpdateExpression": "SET agg = :agg, #v = :next, updated_at = :now",
                        "ConditionExpression": cond["ConditionExpression"],
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION_ITEMS} items, got {len(items)}")
        # The token makes a transaction retried by the SDK after a lost response idempotent (10 minutes).
        token = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:36]
        self._call("transact_write_items", TransactItems=items, ClientRequestToken=token)

    def put_profile(
        self,
        record: CustomerRecord,
        profile: dict[str, Any],
        aggregates: CustomerAggregates | None,
        now: datetime,
    ) -> None:
        """Replace the profile (and, after a time-zone change, the re-bucketed aggregates) if unchanged since read."""
        cond = self._customer_condition(record)
        sets = ["profile = :p", "#v = :next", "updated_at = :now"]
        if (record.profile or {}).get("consent") != profile.get("consent"):
            sets.append("consent_at = :now")
        values: dict[str, Any] = {
            ":p": _ser.serialize(to_dynamo(profile)),
            ":next": {"N": str(record.version + 1)},
            ":now": {"S": now.isoformat()},
            **cond["ExpressionAttributeValues"],
        }
        if aggregates is not None:
            sets.append("agg = :agg")
            values[":agg"] = _ser.serialize(to_dynamo(aggregates.to_dict()))
        self._call(
            "update_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": record.customer_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=cond["ConditionExpression"],
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues=values,
        )

    def put_recommendation(self, customer_id: str, recommendation: dict[str, Any]) -> None:
        """Store a scoring result on an existing customer (never creates a customer)."""
        try:
            self._call(
                "update_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": customer_id}},
                UpdateExpression="SET recommendation = :r",
                ConditionExpression="attribute_exists(customer_id)",
                ExpressionAttributeValues={":r": _ser.serialize(to_dynamo(recommendation))},
            )
        except ConflictError:
            return  # erased meanwhile: nothing to recommend to

    def erase_customer(self, customer_id: str) -> dict[str, Any]:
        """Delete a customer's events, moments and profile item; say what was there."""
        keys: list[dict[str, Any]] = []
        events, moments = 0, 0
        dates: set[str] = set()
        for item in self._query_sks(customer_id):
            sk = item["sk"]["S"]
            keys.append({"customer_id": item["customer_id"], "sk": item["sk"]})
            if sk.startswith("e#"):
                events += 1
                if "ts" in item:
                    dates.add(time.strftime("%Y-%m-%d", time.gmtime(int(item["ts"]["N"]))))
            elif sk.startswith("m#"):
                moments += 1
        for start in range(0, len(keys), MAX_BATCH_WRITE_ITEMS):
            request = {self.events_table: [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]}
            attempt = 0
            while request:
                resp = self._call("batch_write_item", RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if request:
                    attempt += 1
                    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
        resp = self._call(
            "delete_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ReturnValues="ALL_OLD",
        )
        old = from_item(resp.get("Attributes", {})) if resp.get("Attributes") else {}
        return {
            "profile": "profile" in old,
            "aggregates": "agg" in old,
            "events": events,
            "engagement_moments": moments,
            "event_dates": sorted(dates),
        }

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """Customers that exist among ``customer_ids`` (consistent reads, 100 a call)."""
        keys = {self.customers_table: [{"customer_id": {"S": c}} for c in sorted(set(customer_ids))]}
        if not keys[self.customers_table]:
            return {}
        return {rec.customer_id: rec for rec in (self._record(raw) for _, raw in self._batch_get(keys))}

    def scan_customers(
        self, segment: int, total_segments: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        """One page of a parallel scan segment: the customers and the id to resume after (``None`` at the end).

        Reserved ids (``__…``, e.g. the population fallback) are skipped.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.customers_table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
            "ProjectionExpression": "customer_id, agg, #v, profile, consent_at, recommendation",
            "ExpressionAttributeNames": {"#v": "version"},
        }
        if start_after:
            kwargs["ExclusiveStartKey"] = {"customer_id": {"S": start_after}}
        resp = self._call("scan", **kwargs)
        records = [self._record(i) for i in resp.get("Items", []) if not i["customer_id"]["S"].startswith("__")]
        last = resp.get("LastEvaluatedKey")
        return records, (last["customer_id"]["S"] if last else None)

    def put_fallback(self, key: str, recommendation: dict[str, Any]) -> None:
        """Store a population or segment fallback recommendation under a reserved id (``__…``)."""
        self._call(
            "put_item",
            TableName=self.customers_table,
            Item=to_item({"customer_id": key, "recommendation": recommendation}),
        )

    def get_recommendation(self, key: str) -> dict[str, Any] | None:
        resp = self._call(
            "get_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": key}},
            ProjectionExpression="recommendation",
        )
        item = resp.get("Item")
        return from_item(item).get("recommendation") if item else None
