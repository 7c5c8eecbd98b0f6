"""Erasure in the customer store: the tombstone, what is left where, and deleting it (see ``dynamo_base``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kairos.core.aws import from_item
from kairos.core.errors import ConflictError
from kairos.customers.adapters import layout
from kairos.customers.adapters.dynamo_base import _HOLDS_DATA, DECISION_MARKER, SEND_COUNTERS, DynamoBase
from kairos.customers.ports import ErasureStore

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


class DynamoErasure(DynamoBase, ErasureStore):
    """The erasure steps, each safe to repeat."""

    def tombstone(self, customer_id: str, now: datetime) -> dict[str, Any]:
        """Replace the customer by a tombstone in one update; say what was there.

        The update bumps the version, so an ingestion that read the customer before cannot write after it, and
        removes the names of the parts, so no read finds them before they are deleted.
        The tombstone lives as long as the events could (their retention), plus a day for late feedback.
        """
        resp = self._call(
            "update_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            UpdateExpression="SET erased_at = :now, #v = if_not_exists(#v, :zero) + :one, expires_at = :exp "
            "REMOVE core, parts, lm, profile, agg, recommendation, consent_at, updated_at, " + ", ".join(SEND_COUNTERS),
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={
                ":now": {"S": now.isoformat()},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":exp": {"N": str(int(now.timestamp()) + self.retention_seconds + 86400)},
            },
            ReturnValues="ALL_OLD",
        )
        old = from_item({k: v for k, v in (resp.get("Attributes") or {}).items() if k != "core"})
        core = "core" in (resp.get("Attributes") or {})
        if core:  # the moments the core held are gone with it: the inventory counts them still
            self._erased_moments[customer_id] = len(layout.decode_core(resp["Attributes"]["core"]["B"])[1].unflushed)
        return {
            "existed": bool(old) or core,
            "profile": "profile" in old or layout.PROFILE in (old.get("parts") or ()),
            "aggregates": "agg" in old or core,
            "erased_before": old.get("erased_at"),
        }

    def forget_tombstone(self, customer_id: str, erased_at: datetime) -> None:
        """Remove a tombstone written for an id that never held anything (unless something arrived since)."""
        try:
            self._call(
                "delete_item",
                TableName=self.customers_table,
                Key={"customer_id": {"S": customer_id}},
                ConditionExpression=f"erased_at = :t AND NOT {_HOLDS_DATA}",
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
            elif not sk.startswith(layout.PART_PREFIX):
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
        keys = {self.customers_table: [{"customer_id": {"S": c}} for c in sorted(set(customer_ids))]}
        if not keys[self.customers_table]:
            return {}
        return {
            raw["customer_id"]["S"]: raw["erased_at"]["S"] for _, raw in self._batch_get(keys) if "erased_at" in raw
        }
