"""DynamoDB adapter for events, engagement moments and customers.

Tables (both from ``template.yaml``):

- events table, key ``customer_id`` + ``sk``: ``e#<event_id>`` holds one accepted event (the archive record as
  JSON), expiring with the event retention (TTL attribute ``expires_at``); ``a#<part>`` the customer's parts
  (profile, recommendation, product and purchase history) and ``n#<YYYY-MM>`` month markers of the moments already
  counted (``kairos.customers.adapters.layout``); ``d#<object key>`` marks a decision-log object that names the
  customer, so an erasure finds it.
- customers table, key ``customer_id``: the customer's core (the aggregates every event touches, compressed, with
  the bookkeeping of exactly-once counting), the optimistic-lock ``version`` and the names of the parts stored.
  An erased customer's item is deleted and a tombstone left under ``__erased#<HMAC-SHA256 of the id>`` (the id
  itself is not kept: ids may be email addresses), with ``erased_at``, expiring with the event retention, so
  that late feedback, replayed events and in-flight writes cannot bring the customer back. A customer's first
  write is a transaction with a check of the tombstone as it was read; a customer who comes back after an
  erasure keeps ``erased_at`` on the item, and earlier events stay refused.

An ingestion folds, then stores: the customer's new core is written on condition that its version is the one
read, then the events' items. The core's journal names the events it folded until their items are seen stored, so
a retried or concurrent batch can neither store an event twice nor count it twice, without a transaction (which
would bill every item twice): about 2 WCU per event whatever the history. A customer stored before the split (one
item with ``agg``, ``profile`` and ``recommendation``, moments as ``m#``/``p#`` items) is read as it is and moves
to the split layout on its next write.

The module is in three: this base (the client, batched reads and writes, the shared constants), the erasure
(``dynamo_erasure``) and the store (``dynamo``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from kairos.core import timeutil
from kairos.core.aws import STORE_RETRIES, LazyClient, call, domain_error, error_code, to_item
from kairos.core.constants import CHANNELS, ENV_ERASURE_KEY_PARAMETER
from kairos.core.errors import ConflictError, InvalidInputError, KairosError, StoreError, ThrottledError
from kairos.customers.adapters import layout

# Delivered messages per channel, one counter attribute each (an ADD needs no existing map).
SEND_COUNTERS = tuple(f"sends_{c}" for c in CHANNELS)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

    from kairos.customers.domain import CustomerWrite


MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25
DECISION_MARKER = "d#"  # events-table item per customer and decision-log object that names them
# Customers whose stored state (unflushed moments, old layout) this store remembers between a read and a write.
REMEMBERED_CUSTOMERS = 20_000
# How long a folded event stays in its customer's journal waiting to be seen stored (a client retries within it).
JOURNAL_SECONDS = 86400
# Customers of one request committed at once.
COMMIT_THREADS = 8
# A customer item that holds no data, only the tombstone of an erasure.
_DATA_ATTRIBUTES = ("core", "parts", "agg", "profile")
_HOLDS_DATA = "(" + " OR ".join(f"attribute_exists({a})" for a in _DATA_ATTRIBUTES) + ")"
# Tombstones live in the customers table under a keyed hash of the id (reserved ids start with ``__``).
TOMBSTONE_PREFIX = "__erased#"
# An event's item outlives the archive object that copies it (the bucket's lifecycle counts days from the object's
# creation, rounded up to midnight UTC, and removes it some time after): an erasure finds the object by the item.
ARCHIVE_EXPIRY_MARGIN_SECONDS = 7 * 86400
_LIVE_CUSTOMER = f"attribute_exists(customer_id) AND (attribute_not_exists(erased_at) OR {_HOLDS_DATA})"


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


def _back_off(attempt: int, what: str) -> None:
    """Wait before sending again what DynamoDB left unprocessed (exponential, full jitter); give up after 8 tries."""
    if attempt > 8:
        raise ThrottledError(f"DynamoDB kept {what} unprocessed")
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())


@dataclass
class _Stored:
    """What the store read of a customer beyond the record: its core's bookkeeping, the journal's events known to be
    stored, and whether the customer is still in the layout before the split (its next write moves it)."""

    core: layout.Core
    legacy: bool = False
    confirmed: set[str] = field(default_factory=set)


class DynamoBase:
    """The client, the tables and the batched calls every part of the customer store uses.

    Parameters
    ----------
    events_table, customers_table
        Physical table names.
    client
        A boto3 DynamoDB client; created lazily when omitted.
    retention_seconds
        How long events and moment markers live (their TTL).
    erasure_key
        Gives the key of the tombstones' hash, read on first need (an erasure, a customer's first write, a check
        for erased ids); a function without it cannot erase nor create customers.
    """

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(
        self,
        events_table: str,
        customers_table: str,
        client: DynamoDBClient | None = None,
        retention_seconds: int = 400 * 86400,
        erasure_key: Callable[[], bytes] | None = None,
    ) -> None:
        self.events_table = events_table
        self.customers_table = customers_table
        self.client = client
        self.retention_seconds = retention_seconds
        self.erasure_key = erasure_key
        self.request_count = 0  # DynamoDB API calls made, for benchmarks
        # (customer id, version) -> what was read of it; a write of a version not read here is a conflict (reload)
        self._stored: OrderedDict[tuple[str, int], _Stored] = OrderedDict()
        self._erased_moments: dict[str, int] = {}  # moments a tombstone removed with the core, for the inventory
        self._lock = threading.RLock()  # the remembered state, shared by a request's commits

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        self.request_count += 1
        return call(self.client, op, "DynamoDB", **kwargs)

    def _tombstone_key(self, customer_id: str) -> str:
        """The customers-table key of a customer's tombstone: a keyed hash of the id, which it never holds.

        Raises
        ------
        StoreError
            The store was built without an erasure key (a function without ``KAIROS_ERASURE_KEY_PARAMETER``): it
            cannot tell erased ids, so it neither erases nor creates customers.
        """
        if self.erasure_key is None:
            raise StoreError(f"no erasure key: {ENV_ERASURE_KEY_PARAMETER} is not set for this function")
        digest = hmac.new(self.erasure_key(), customer_id.encode(), hashlib.sha256).hexdigest()
        return TOMBSTONE_PREFIX + digest

    def _tombstones(self, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The tombstones of ``customer_ids`` (id -> item): the keyed ones, and those earlier versions kept under
        the id itself (an item with ``erased_at`` and no data, until it expires)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        by_key = {self._tombstone_key(c): c for c in ids}
        keys = [{"customer_id": {"S": k}} for k in [*by_key, *ids]]
        found: dict[str, dict[str, Any]] = {}
        for _, raw in self._batch_get({self.customers_table: keys}):
            key = raw["customer_id"]["S"]
            if "erased_at" not in raw:
                continue
            if key in by_key:
                found[by_key[key]] = raw
            elif not any(k in raw for k in _DATA_ATTRIBUTES):
                found.setdefault(key, raw)
        return found

    def _remember(self, customer_id: str, version: int, stored: _Stored) -> None:
        with self._lock:
            self._stored[(customer_id, version)] = stored
            self._stored.move_to_end((customer_id, version))
            while len(self._stored) > REMEMBERED_CUSTOMERS:
                self._stored.popitem(last=False)

    def _batch_get(
        self, keys: dict[str, list[dict[str, Any]]], consistent: bool = True
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """BatchGetItem over any number of keys, 100 a call, retrying unprocessed keys with backoff."""
        flat = [(table, key) for table, ks in keys.items() for key in ks]
        for start in range(0, len(flat), MAX_BATCH_GET_KEYS):
            request: dict[str, Any] = {}
            for table, key in flat[start : start + MAX_BATCH_GET_KEYS]:
                request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})["Keys"].append(key)
            attempt = 0
            while request:
                resp = self._call("batch_get_item", RequestItems=request)
                for table, items in resp.get("Responses", {}).items():
                    for item in items:
                        yield table, item
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    _back_off(attempt, "keys")

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

    def _batch_write(self, table: str, requests: list[dict[str, Any]], mapped: bool = False) -> None:
        """BatchWriteItem, 25 a call, retrying unprocessed items with backoff (``mapped``: failures told apart as
        an ingestion's writes are)."""
        send = self._write_call if mapped else self._call
        for start in range(0, len(requests), MAX_BATCH_WRITE_ITEMS):
            request = {table: requests[start : start + MAX_BATCH_WRITE_ITEMS]}
            attempt = 0
            while request:
                resp = send("batch_write_item", RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if request:
                    attempt += 1
                    _back_off(attempt, "writes")

    def _write_call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """One write of an ingestion, its failure told apart as a transaction's is (see :func:`_ingest_error`)."""
        self.request_count += 1
        try:
            return getattr(self.client, op)(**kwargs)
        except ClientError as exc:
            raise _ingest_error(exc) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StoreError(f"DynamoDB {op} unreachable ({type(exc).__name__})") from exc

    def _transact(self, items: list[dict[str, Any]], token: str | None = None) -> None:
        """TransactWriteItems, its failure told apart: a lost race, throttling, refused data, or a store fault."""
        self.request_count += 1
        try:
            if token:
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=token)
            else:
                self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            raise _ingest_error(exc) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # No answer after the SDK's retries.
            raise StoreError(f"DynamoDB transact_write_items unreachable ({type(exc).__name__})") from exc

    def _part_put(self, customer_id: str, name: str, attrs: dict[str, Any], version: int) -> dict[str, Any]:
        item = {"customer_id": {"S": customer_id}, "sk": {"S": layout.part_sk(name)}, "v": {"N": str(version)}}
        return {"Put": {"TableName": self.events_table, "Item": {**item, **attrs}}}

    def _write_customer(self, month_items: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
        """Month markers first (adding hours to a set again changes nothing), then the core: alone, one conditional
        update; with parts, one transaction."""
        for update in month_items:
            self._write_call("update_item", **update)
        if len(items) == 1:
            self._write_call("update_item", **items[0]["Update"])
        else:
            self._transact(items)

    def _event_item(self, customer_id: str, ev: Any) -> dict[str, Any]:
        return to_item(
            {
                "customer_id": customer_id,
                "sk": event_sk(ev.event_id),
                # UTF-8 as is, so the stored size is the size the API's limit measured
                "record": json.dumps(ev.to_record(), separators=(",", ":"), sort_keys=True, ensure_ascii=False),
                "type": ev.type,
                "message_id": ev.message_id,
                "ts": int(ev.timestamp.timestamp()),
                # Counted from when it is stored, as the archive's copy is: a backfilled event's item stays as long
                # as the copy an erasure must find through it.
                "expires_at": int(max(ev.timestamp, timeutil.now()).timestamp())
                + self.retention_seconds
                + ARCHIVE_EXPIRY_MARGIN_SECONDS,
            }
        )

    def _store_events(self, customer_id: str, events: list[Any]) -> None:
        """Store folded events, each once: an item already there (another request stored it) is left as it is."""
        for ev in events:
            try:
                self._write_call(
                    "put_item",
                    TableName=self.events_table,
                    Item=self._event_item(customer_id, ev),
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ConflictError:
                continue

    def _threaded(self, fn: Any, items: list[Any]) -> list[KairosError | None]:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(COMMIT_THREADS, len(items))) as pool:
            return list(pool.map(fn, items))

    def _put_chunk(self, writes: list[CustomerWrite]) -> Any:
        def put(chunk: list[tuple[int, Any]]) -> KairosError | None:
            requests = [{"PutRequest": {"Item": self._event_item(writes[i].record.customer_id, ev)}} for i, ev in chunk]
            try:
                self._batch_write(self.events_table, requests, mapped=True)
            except KairosError as exc:
                return exc
            return None

        return put
