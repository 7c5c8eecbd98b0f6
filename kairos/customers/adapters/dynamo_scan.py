"""Reading the customers table a page at a time: a shard of a parallel scan, or one page to browse (see
``dynamo_base`` for the layout)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.customers.adapters.dynamo_base import DynamoBase

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kairos.customers.domain import CustomerRecord


class DynamoScan(DynamoBase):
    """Pages of the customers table; the store joins each customer's item with the parts it asks for."""

    def _records(
        self,
        raws: list[dict[str, Any]],
        wanted: Mapping[str, tuple[str, ...]] | None = None,
        consistent: bool = True,
        also: list[dict[str, Any]] | None = None,
        decoded: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, CustomerRecord], list[dict[str, Any]]]:
        raise NotImplementedError  # the store's own (DynamoStore._records)

    def _page(
        self, with_parts: bool, start_after: str | None, **kwargs: Any
    ) -> tuple[list[CustomerRecord], str | None]:
        if start_after:
            kwargs["ExclusiveStartKey"] = {"customer_id": {"S": start_after}}
        resp = self._call("scan", TableName=self.customers_table, **kwargs)
        raws = [
            raw
            for raw in resp.get("Items", [])
            if not raw["customer_id"]["S"].startswith("__")
            and ("erased_at" not in raw or any(k in raw for k in ("core", "parts", "agg", "profile")))
        ]
        # Without parts, no customer's parts are read: the page costs the scan alone.
        wanted = None if with_parts else {raw["customer_id"]["S"]: () for raw in raws}
        records = self._records(raws, wanted, consistent=False)[0]
        last = resp.get("LastEvaluatedKey")
        return [r for r in records.values() if not r.erased], (last["customer_id"]["S"] if last else None)

    def scan_customers(
        self, shard: int, total_shards: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        """One page of a shard of a parallel scan: the customers and the id to resume after (``None`` at the end).

        Reserved ids (``__…``, e.g. the population fallback) are skipped. Parts are read eventually consistent.
        """
        # DynamoDB names a shard of a parallel scan a segment; in Kairos a segment is a saved audience.
        return self._page(True, start_after, Segment=shard, TotalSegments=total_shards, Limit=limit)

    def list_customers(self, cursor: str | None = None, limit: int = 50) -> tuple[list[CustomerRecord], str | None]:
        """One page of the table (``Limit``: at most ``limit`` items read), each customer from its core item only:
        no profile and none of the aggregates' parts (recent products, purchase days)."""
        return self._page(False, cursor, Limit=limit)
