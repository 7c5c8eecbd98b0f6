"""DynamoDB adapter for events, engagement moments and customers.

Tables (both from ``template.yaml``):

- events table, key ``customer_id`` + ``sk``: ``e#<event_id>`` holds one accepted event (the archive record as
  JSON), ``m#<epoch hour>`` / ``p#<epoch hour>`` marks an engagement / purchase moment already counted in the
  aggregates. Both expire with the event retention (TTL attribute ``expires_at``).
  ``d#<object key>`` marks a decision-log object that names the customer, so an erasure finds it.
- customers table, key ``customer_id``: the profile, the aggregates and their optimistic-lock ``version``.
  An erased customer leaves a tombstone (``erased_at``, expiring with the event retention) so that late
  feedback, replayed events and in-flight writes cannot bring the customer back.

Every accepted event, its new moments and its customer's new aggregates are written in one transaction with
conditions (event and moment absent, customer version unchanged), so a retried or concurrent batch can neither
store an event twice nor count it twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from kairos.core.aws import STORE_RETRIES, LazyClient, call, domain_error, error_code, from_item, to_dynamo, to_item
from kairos.core.constants import CHANNELS
from kairos.core.errors import ConflictError, InvalidInputError, StoreError, ThrottledError
from kairos.customers.aggregates import CustomerAggregates
from kairos.customers.domain import CustomerRecord, IngestState
from kairos.customers.ports import CustomerStore

# Delivered messages per channel, one counter attribute each (an ADD needs no existing map).
SEND_COUNTERS = tuple(f"sends_{c}" for c in CHANNELS)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient

    from kairos.customers.domain import CustomerWrite

MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25
DECISION_MARKER = "d#"  # events-table item per customer and decision-log object that names them

_ser = TypeSerializer()


def event_sk(event_id: str) -> str:
    return f"e#{event_id}"


# A cancelled transaction says per item why (CancellationReasons):
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
_REFUSED_REASONS = frozenset({"ValidationError", "ItemCollectionSizeLimitExceeded"})
_THROTTLED_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


def _ingest_error(exc: ClientError) -> Exception:
    """The domain error of a failed ingest transaction (see ``DynamoStore.commit_ingest``)."""
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
    if code == "TransactionCanceledException":
        reasons = {str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []}
        if reasons & _REFUSED_REASONS:
            return InvalidInputError("(event)", f"the store refused the write ({', '.join(sorted(reasons))})")
        if reasons & _THROTTLED_REASONS:
            return ThrottledError(f"DynamoDB transact_write_items throttled ({', '.join(sorted(reasons))})")
        # ConditionalCheckFailed, TransactionConflict: reload and try again.
        return ConflictError(f"DynamoDB transact_write_items: cancelled ({', '.join(sorted(reasons))})")
    if code == "ValidationException":
        # Sizes are checked before a write; what DynamoDB still refuses is refused whatever the retry.
        return InvalidInputError("(event)", f"the store refused the write: {message or code}")
    if code == "TransactionInProgressException":
        return ConflictError("DynamoDB transact_write_items: the same transaction is in progress")
    return domain_error(exc, "DynamoDB transact_write_items")


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
            erased_at=doc.get("erased_at"),
            channel_sends={c: int(doc[f"sends_{c}"]) for c in CHANNELS if doc.get(f"sends_{c}")},
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
        InvalidInputError
            DynamoDB refused the data itself (an item over 400 KB, the transaction over 4 MB): writing the same
            again will fail again. Nothing was written.
        ThrottledError
            Throttled after the SDK's retries. Nothing was written.
        StoreError
            Any other failure: a 5xx or no answer after the SDK's retries (transient), a missing table or
            permission (not transient, see ``kairos.http.api.is_transient``).
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
                                    # UTF-8 as is, so the stored size is the size the API's limit measured
                                    "record": json.dumps(
                                        record, separators=(",", ":"), sort_keys=True, ensure_ascii=False
                                    ),
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
        self._transact_ingest(items, token)

    def _transact_ingest(self, items: list[dict[str, Any]], token: str) -> None:
        """TransactWriteItems, its failure told apart: a lost race, throttling, refused data, or a store fault."""
        self.request_count += 1
        try:
            self.client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except ClientError as exc:
            raise _ingest_error(exc) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # No answer after the SDK's retries; the request token makes a retry of the same batch safe.
            raise StoreError(f"DynamoDB transact_write_items unreachable ({type(exc).__name__})") from exc

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
                # a tombstone alone is not a customer: only what was learnt since the erasure is scored
                ConditionExpression="attribute_exists(customer_id) AND "
                "(attribute_not_exists(erased_at) OR attribute_exists(agg) OR attribute_exists(profile))",
                ExpressionAttributeValues={":r": _ser.serialize(to_dynamo(recommendation))},
            )
        except ConflictError:
            return  # erased meanwhile: nothing to recommend to

    def count_send(self, customer_id: str, channel: str) -> None:
        """Add one delivered message on ``channel`` to the customer's counter (never creates a customer)."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        try:
            self._call(
                "update_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": customer_id}},
                UpdateExpression="ADD #c :one",
                ConditionExpression="attribute_exists(customer_id) AND "
                "(attribute_not_exists(erased_at) OR attribute_exists(agg) OR attribute_exists(profile))",
                ExpressionAttributeNames={"#c": f"sends_{channel}"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ConflictError:
            return  # erased meanwhile

    # ---------------------------------------------------------------- erasure

    def tombstone(self, customer_id: str, now: datetime) -> dict[str, Any]:
        """Replace the customer by a tombstone in one update; say what was there.

        The update bumps the version, so an ingestion that read the customer before cannot write after it.
        The tombstone lives as long as the events could (their retention), plus a day for late feedback.
        """
        resp = self._call(
            "update_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            UpdateExpression="SET erased_at = :now, #v = if_not_exists(#v, :zero) + :one, expires_at = :exp "
            "REMOVE profile, agg, recommendation, consent_at, updated_at, " + ", ".join(SEND_COUNTERS),
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={
                ":now": {"S": now.isoformat()},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":exp": {"N": str(int(now.timestamp()) + self.retention_seconds + 86400)},
            },
            ReturnValues="ALL_OLD",
        )
        old = from_item(resp["Attributes"]) if resp.get("Attributes") else {}
        return {
            "existed": bool(old),
            "profile": "profile" in old,
            "aggregates": "agg" in old,
            "erased_before": old.get("erased_at"),
        }

    def forget_tombstone(self, customer_id: str, erased_at: datetime) -> None:
        """Remove a tombstone written for an id that never held anything (unless something arrived since)."""
        try:
            self._call(
                "delete_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": customer_id}},
                ConditionExpression="erased_at = :t AND attribute_not_exists(agg) AND attribute_not_exists(profile)",
                ExpressionAttributeValues={":t": {"S": erased_at.isoformat()}},
            )
        except ConflictError:
            return

    def erasure_inventory(self, customer_id: str) -> dict[str, Any]:
        """What the events table holds of a customer, and where copies of it live elsewhere."""
        events, moments = 0, 0
        dates: set[str] = set()
        decisions: set[str] = set()
        for item in self._query_sks(customer_id):
            sk = item["sk"]["S"]
            if sk.startswith("e#"):
                events += 1
                if "ts" in item:
                    dates.add(time.strftime("%Y-%m-%d", time.gmtime(int(item["ts"]["N"]))))
            elif sk.startswith(DECISION_MARKER):
                decisions.add(sk[len(DECISION_MARKER) :])
            else:
                moments += 1
        return {
            "events": events,
            "engagement_moments": moments,
            "event_dates": sorted(dates),
            "decision_objects": sorted(decisions),
        }

    def delete_customer_items(self, customer_id: str) -> None:
        """Delete every events-table item of the customer (events, moments, decision markers)."""
        keys = [{"customer_id": i["customer_id"], "sk": i["sk"]} for i in self._query_sks(customer_id)]
        self._batch_write(self.events_table, [{"DeleteRequest": {"Key": k}} for k in keys])

    def _batch_write(self, table: str, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), MAX_BATCH_WRITE_ITEMS):
            request = {table: requests[start : start + MAX_BATCH_WRITE_ITEMS]}
            attempt = 0
            while request:
                resp = self._call("batch_write_item", RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if request:
                    attempt += 1
                    if attempt > 8:
                        raise ThrottledError("DynamoDB kept writes unprocessed")
                    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())

    def erased_at(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """The tombstones among ``customer_ids``: id -> when it was erased."""
        keys = {self.customers_table: [{"customer_id": {"S": c}} for c in sorted(set(customer_ids))]}
        if not keys[self.customers_table]:
            return {}
        return {
            raw["customer_id"]["S"]: raw["erased_at"]["S"] for _, raw in self._batch_get(keys) if "erased_at" in raw
        }

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """Customers that exist among ``customer_ids`` (consistent reads, 100 a call)."""
        keys = {self.customers_table: [{"customer_id": {"S": c}} for c in sorted(set(customer_ids))]}
        if not keys[self.customers_table]:
            return {}
        records = (self._record(raw) for _, raw in self._batch_get(keys))
        return {rec.customer_id: rec for rec in records if not rec.erased}

    def scan_customers(
        self, shard: int, total_shards: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        """One page of a shard of a parallel scan: the customers and the id to resume after (``None`` at the end).

        Reserved ids (``__…``, e.g. the population fallback) are skipped.
        """
        # DynamoDB names a shard of a parallel scan a segment; in Kairos a segment is a saved audience.
        kwargs: dict[str, Any] = {
            "TableName": self.customers_table,
            "Segment": shard,
            "TotalSegments": total_shards,
            "Limit": limit,
            "ProjectionExpression": "customer_id, agg, #v, profile, consent_at, recommendation, erased_at",
            "ExpressionAttributeNames": {"#v": "version"},
        }
        if start_after:
            kwargs["ExclusiveStartKey"] = {"customer_id": {"S": start_after}}
        resp = self._call("scan", **kwargs)
        records = [
            rec
            for rec in (self._record(i) for i in resp.get("Items", []) if not i["customer_id"]["S"].startswith("__"))
            if not rec.erased
        ]
        last = resp.get("LastEvaluatedKey")
        return records, (last["customer_id"]["S"] if last else None)

    def approximate_count(self) -> int | None:
        # DynamoDB refreshes ItemCount about every six hours: enough to size a nightly run.
        return int(self._call("describe_table", TableName=self.customers_table)["Table"].get("ItemCount", 0))

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
