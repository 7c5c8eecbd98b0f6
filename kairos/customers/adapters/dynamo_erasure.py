"""Erasure in the customer store: the tombstone, what is left where, and deleting it (see ``dynamo_base``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kairos.core.aws import from_item
from kairos.core.errors import ConflictError
from kairos.customers.adapters import layout
from kairos.customers.adapters.dynamo_base import _DATA_ATTRIBUTES, DECISION_MARKER, DynamoBase
from kairos.customers.ports import ErasureStore

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


class DynamoErasure(DynamoBase, ErasureStore):
    """The erasure steps, each safe to repeat."""

    def tombstone(self, customer_id: str, now: datetime) -> dict[str, Any]:
        """Write the tombstone, then delete the customer's item; say what was there.

        The tombstone goes first, so a retried ingestion that finds the item gone finds it. Deleting the item
        ends its version, so an ingestion that read the customer before cannot write after: its condition fails
        and it reads again. The tombstone lives as long as the events could (their retention), plus a day for
        late feedback; after that, every event from before the erasure is older than the retention and refused.
        """
        key = self._tombstone_key(customer_id)
        was = (
            self._call(
                "update_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": key}},
                UpdateExpression="SET erased_at = :now, expires_at = :exp",
                ExpressionAttributeValues={
                    ":now": {"S": now.isoformat()},
                    ":exp": {"N": str(int(now.timestamp()) + self.retention_seconds + 86400)},
                },
                ReturnValues="ALL_OLD",
            ).get("Attributes")
            or {}
        )
        resp = self._call(
            "delete_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ReturnValues="ALL_OLD",
        )
        attrs = resp.get("Attributes") or {}
        old = from_item({k: v for k, v in attrs.items() if k != "core"})
        if "core" in attrs:  # the moments the core held are gone with it: the inventory counts them still
            self._erased_moments[customer_id] = len(layout.decode_core(attrs["core"]["B"])[1].unflushed)
        erased_before = was.get("erased_at", {}).get("S") or old.get("erased_at")
        return {
            "existed": any(k in attrs for k in _DATA_ATTRIBUTES),
            "profile": "profile" in old or layout.PROFILE in (old.get("parts") or ()),
            "aggregates": "agg" in old or "core" in attrs,
            "erased_before": erased_before,
        }

    def forget_tombstone(self, customer_id: str, erased_at: datetime) -> None:
        """Remove a tombstone written for an id that never held anything (unless another erasure wrote it since)."""
        try:
            self._call(
                "delete_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": self._tombstone_key(customer_id)}},
                ConditionExpression="erased_at = :t",
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
            elif sk.startswith(layout.MONTH_PREFIX):
                moments += sum(len(item.get(k, {}).get("NS", [])) for k in ("m", "p"))
            elif sk.startswith(("m#", "p#")):
                moments += 1  # a marker written before the split
        return {
            "events": events,
            "engagement_moments": moments + self._erased_moments.get(customer_id, 0),
            "event_dates": sorted(dates),
            "decision_objects": sorted(decisions),
        }

    def delete_customer_items(self, customer_id: str) -> None:
        """Delete every events-table item of the customer (events, parts, moment and decision markers)."""
        keys = [{"customer_id": i["customer_id"], "sk": i["sk"]} for i in self._query_sks(customer_id)]
        self._batch_write(self.events_table, [{"DeleteRequest": {"Key": k}} for k in keys])

    def erased_at(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """The tombstones among ``customer_ids``: id -> when it was erased."""
        return {cid: raw["erased_at"]["S"] for cid, raw in self._tombstones(customer_ids).items()}
