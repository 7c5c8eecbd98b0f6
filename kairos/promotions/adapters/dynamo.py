"""Promo code pools in one DynamoDB table.

Items (``pk``, ``sk``), spread over partitions so neither an upload nor a burst of takes waits on one:

- ``<pool>`` / ``meta``: ``uploaded``, ``taken``, ``low_water``, ``updated_at`` (the pool's counts);
- ``<pool>#c<s>`` / ``free#<xx>#<code>``: a code not handed out yet;
- ``<pool>#c<s>`` / ``taken#<code>``: a code handed out, with its holder;
- ``<pool>#h<s>`` / ``holder#<holder>``: the holder's code.

``s`` is the first hex digit of the SHA-256 of the code (of the holder), ``xx`` the next two. A partition takes
about 1,000 writes a second: 16 of them take an upload of 10,000 codes, or a launch's takes, without throttling,
and ``xx`` lets a take start reading its shard at a random point, so concurrent takes rarely want the same code.

A take is one transaction: delete the free item (it must exist), put ``taken#<code>`` (it must not exist) and
put ``holder#<holder>`` (it must not exist). No code can go to two holders, no holder can get two codes, and a
code handed out and then uploaded again (a free item beside its ``taken`` item) is never handed out twice. The
counts are a separate ``ADD`` on ``meta``: inside the transaction, every take would contend for that one item.
"""

from __future__ import annotations

import hashlib
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kairos.core.aws import STORE_RETRIES, LazyClient, call, domain_error, error_code
from kairos.core.errors import ConflictError, NotFoundError, StoreError, ThrottledError
from kairos.core.observability import logger
from kairos.promotions.domain import PromoCodesAdded, PromoPoolView, TakenCode
from kairos.promotions.ports import PromoPools

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS = 16
CANDIDATES = 10  # free codes read per query: a take picks one of them at random
TAKE_ATTEMPTS = 12  # transactions a take tries before giving up on a very busy pool (ConflictError)
BATCH_GET_KEYS = 100  # BatchGetItem's limit
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
BATCH_ATTEMPTS = 8  # rounds of unprocessed keys or items before the batch counts as throttled
WORKERS = 8  # batches in flight at once during an upload
META = "meta"
FAILED = "ConditionalCheckFailed"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _backoff(attempt: int) -> None:
    # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))  # noqa: S311 - not cryptographic


class DynamoPromoPools(PromoPools):
    """Promo code pools, in the table ``promo_table`` (key ``pk``, ``sk``).

    Parameters
    ----------
    promo_table
        The table's name.
    client
        A DynamoDB client (default: created on first use).
    workers
        Batches an upload sends at once.
    rng
        Where a take starts reading free codes (tests pass a seeded one).

    Example
    -------
    >>> pools = DynamoPromoPools("kairos-PromoCodesTable")
    >>> pools.take("summer", holder_key("j1.c42.e1"), now)
    TakenCode(code='A1', fresh=True, counts=...)
    """

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(
        self,
        promo_table: str,
        client: DynamoDBClient | None = None,
        workers: int = WORKERS,
        rng: random.Random | None = None,
    ) -> None:
        self.table = promo_table
        self.client = client
        self.workers = workers
        self.rng = rng or random.Random()  # noqa: S311 - spreads contention, nothing secret

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.client, op, "DynamoDB", TableName=self.table, **kwargs)

    # ------------------------------------------------------------------ keys

    @staticmethod
    def _free_key(pool: str, code: str) -> dict[str, Any]:
        d = _digest(code)
        return {"pk": {"S": f"{pool}#c{d[0]}"}, "sk": {"S": f"free#{d[1:3]}#{code}"}}

    @staticmethod
    def _taken_key(pool: str, code: str) -> dict[str, Any]:
        return {"pk": {"S": f"{pool}#c{_digest(code)[0]}"}, "sk": {"S": f"taken#{code}"}}

    @staticmethod
    def _holder_key(pool: str, holder: str) -> dict[str, Any]:
        return {"pk": {"S": f"{pool}#h{_digest(holder)[0]}"}, "sk": {"S": f"holder#{holder}"}}

    @staticmethod
    def _meta_key(pool: str) -> dict[str, Any]:
        return {"pk": {"S": pool}, "sk": {"S": META}}

    @staticmethod
    def _view(pool: str, meta: dict[str, Any]) -> PromoPoolView:
        uploaded, taken = int(meta.get("uploaded", {}).get("N", 0)), int(meta.get("taken", {}).get("N", 0))
        low_water = int(meta.get("low_water", {}).get("N", 0))
        # Counts kept apart from the codes can drift by a take whose ADD failed: never show fewer than none.
        return PromoPoolView(pool=pool, available=max(0, uploaded - taken), taken=taken, low_water=low_water)

    # ------------------------------------------------------------------ upload

    def add_codes(self, pool: str, codes: Sequence[str], low_water: int | None, now: datetime) -> PromoCodesAdded:
        codes = list(dict.fromkeys(codes))
        _ = self.client  # built once here, then shared by the batches' threads (clients are thread-safe)
        present = self._present(pool, codes)
        new = [c for c in codes if c not in present]
        at = now.isoformat()
        puts = [
            {"PutRequest": {"Item": {**self._free_key(pool, c), "code": {"S": c}, "added_at": {"S": at}}}} for c in new
        ]
        self._each(self._batch_write, [puts[i : i + BATCH_WRITE_ITEMS] for i in range(0, len(puts), BATCH_WRITE_ITEMS)])
        values: dict[str, Any] = {":n": {"N": str(len(new))}, ":t": {"S": at}, ":zero": {"N": "0"}}
        if low_water is None:
            water = "low_water = if_not_exists(low_water, :zero)"
        else:
            water, values[":lw"] = "low_water = :lw", {"N": str(low_water)}
        meta = self._call(
            "update_item",
            Key=self._meta_key(pool),
            UpdateExpression=f"ADD uploaded :n SET {water}, taken = if_not_exists(taken, :zero), updated_at = :t",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        view = self._view(pool, meta)
        return PromoCodesAdded(**view.model_dump(), added=len(new), already_present=len(codes) - len(new))

    def _present(self, pool: str, codes: list[str]) -> set[str]:
        """The codes the pool has, free or taken (one consistent read of both items per code)."""
        keys = [k for c in codes for k in (self._free_key(pool, c), self._taken_key(pool, c))]
        chunks = [keys[i : i + BATCH_GET_KEYS] for i in range(0, len(keys), BATCH_GET_KEYS)]
        return {item["code"]["S"] for found in self._each(self._batch_get, chunks) for item in found}

    def _each(self, fn: Callable[[list[Any]], Any], chunks: list[list[Any]]) -> list[Any]:
        if self.workers <= 1 or len(chunks) <= 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as pool:
            return list(pool.map(fn, chunks))

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            self.table: {
                "Keys": keys,
                "ConsistentRead": True,
                "ProjectionExpression": "#c",
                "ExpressionAttributeNames": {"#c": "code"},
            }
        }
        for attempt in range(BATCH_ATTEMPTS):
            out = call(self.client, "batch_get_item", "DynamoDB", RequestItems=request)
            found += out.get("Responses", {}).get(self.table, [])
            request = out.get("UnprocessedKeys") or {}
            if not request:
                return found
            _backoff(attempt)
        raise ThrottledError(f"DynamoDB batch_get_item: keys still unprocessed after {BATCH_ATTEMPTS} rounds")

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table: requests}
        for attempt in range(BATCH_ATTEMPTS):
            pending = (
                call(self.client, "batch_write_item", "DynamoDB", RequestItems=pending).get("UnprocessedItems") or {}
            )
            if not pending:
                return
            _backoff(attempt)
        raise ThrottledError(f"DynamoDB batch_write_item: items still unprocessed after {BATCH_ATTEMPTS} rounds")

    # ------------------------------------------------------------------ take

    def take(self, pool: str, holder: str, now: datetime) -> TakenCode | None:
        hkey = self._holder_key(pool, holder)
        mine = self._holder_code(hkey)
        if mine is not None:
            return TakenCode(code=mine, fresh=False)
        for attempt in range(TAKE_ATTEMPTS):
            candidates = self._free_codes(pool)
            if not candidates:
                return None
            code = self.rng.choice(candidates)
            outcome = self._try_take(pool, code, holder, hkey, now)
            if outcome == "taken":
                return TakenCode(code=code, fresh=True, counts=self._count_take(pool))
            if outcome == "holder":  # a concurrent take for the same holder won: its code is the holder's
                mine = self._holder_code(hkey)
                if mine is not None:
                    return TakenCode(code=mine, fresh=False)
            elif outcome == "stale":  # uploaded again after it was handed out: it must never go out again
                self._call("delete_item", Key=self._free_key(pool, code))
            elif outcome == "conflict":
                _backoff(attempt)
            # "gone": another holder took it first; the next query no longer sees it
        raise ConflictError(f"promo pool '{pool}': every try lost a race for a code ({TAKE_ATTEMPTS} tries)")

    def _holder_code(self, hkey: dict[str, Any]) -> str | None:
        item = self._call("get_item", Key=hkey, ConsistentRead=True).get("Item")
        return item["code"]["S"] if item else None

    def _free_codes(self, pool: str) -> list[str]:
        """Up to ``CANDIDATES`` free codes, read from a random point of a random shard onwards (wrapping round).

        An empty pool costs one query per shard, and one more for the first shard's start.
        """
        first = self.rng.randrange(SHARDS)
        start = f"free#{self.rng.randrange(256):02x}#"
        found = self._query_free(pool, first, start)
        for step in range(1, SHARDS + 1):
            if found:
                return found
            found = self._query_free(pool, (first + step) % SHARDS, "free#")
        return found

    def _query_free(self, pool: str, shard: int, start: str) -> list[str]:
        out = self._call(
            "query",
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": f"{pool}#c{shard:x}"}, ":lo": {"S": start}, ":hi": {"S": "free#~"}},
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "code"},
            ConsistentRead=True,
            Limit=CANDIDATES,
        )
        return [item["code"]["S"] for item in out.get("Items", [])]

    def _try_take(self, pool: str, code: str, holder: str, hkey: dict[str, Any], now: datetime) -> str:
        """One take transaction: ``taken``, or why it was cancelled (``holder``, ``stale``, ``gone``, ``conflict``)."""
        at, t, absent = {"S": now.isoformat()}, self.table, "attribute_not_exists(sk)"
        taken = {**self._taken_key(pool, code), "code": {"S": code}, "holder": {"S": holder}, "taken_at": at}
        mine = {**hkey, "code": {"S": code}, "taken_at": at}
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": t,
                    "Key": self._free_key(pool, code),
                    "ConditionExpression": "attribute_exists(sk)",
                }
            },
            {"Put": {"TableName": t, "Item": taken, "ConditionExpression": absent}},
            {"Put": {"TableName": t, "Item": mine, "ConditionExpression": absent}},
        ]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise domain_error(exc, "DynamoDB transact_write_items") from exc
            reasons = [str(r.get("Code", "")) for r in exc.response.get("CancellationReasons", [])]  # type: ignore[attr-defined]
            return self._why(reasons, exc)
        return "taken"

    @staticmethod
    def _why(reasons: list[str], exc: ClientError) -> str:
        if len(reasons) != 3:
            raise StoreError("DynamoDB transact_write_items: cancelled without reasons") from exc
        free, taken, holder = reasons
        if holder == FAILED:
            return "holder"
        if free == FAILED:
            return "gone"
        if taken == FAILED:  # the free item is there, yet the code was handed out: it was uploaded again
            return "stale"
        if any(r in ("ThrottlingError", "ProvisionedThroughputExceeded") for r in reasons):
            raise ThrottledError("DynamoDB transact_write_items throttled") from exc
        # TransactionConflict: another transaction holds one of the items; try again after a pause.
        return "conflict"

    def _count_take(self, pool: str) -> PromoPoolView | None:
        try:
            meta = self._call(
                "update_item",
                Key=self._meta_key(pool),
                UpdateExpression="ADD taken :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except StoreError as exc:
            # The code is the holder's already: hand it out, and let the count lag by one.
            logger.warning("promo pool count not updated", extra={"pool": pool, "error": str(exc)})
            return None
        return self._view(pool, meta)

    # ------------------------------------------------------------------ counts

    def counts(self, pool: str) -> PromoPoolView:
        item = self._call("get_item", Key=self._meta_key(pool), ConsistentRead=True).get("Item")
        if item is None:
            raise NotFoundError(f"promo pool '{pool}' not found")
        return self._view(pool, item)
