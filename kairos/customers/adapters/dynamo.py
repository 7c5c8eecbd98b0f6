"""The customer store on DynamoDB: reads, ingestion's writes, profiles, recommendations and send counters.

The layout and the exactly-once protocol are described in ``kairos.customers.adapters.dynamo_base``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

from kairos.core.aws import from_item, to_dynamo, to_item
from kairos.core.constants import CHANNELS
from kairos.core.errors import ConflictError, KairosError
from kairos.core.timeutil import parse_ts
from kairos.customers.adapters import layout
from kairos.customers.adapters.dynamo_base import (
    _LIVE_CUSTOMER,
    JOURNAL_SECONDS,
    MAX_BATCH_WRITE_ITEMS,
    MAX_TRANSACTION_ITEMS,
    _Stored,
    event_sk,
)
from kairos.customers.adapters.dynamo_erasure import DynamoErasure
from kairos.customers.adapters.dynamo_scan import DynamoScan
from kairos.customers.domain import CustomerRecord, IngestState
from kairos.customers.ports import CustomerStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.customers.domain import CustomerWrite

_ser = TypeSerializer()


class DynamoStore(DynamoScan, DynamoErasure, CustomerStore):
    """Events and customers in DynamoDB: every port of the customer store. The layout and the parameters are
    :class:`~kairos.customers.adapters.dynamo_base.DynamoBase`'s."""

    max_transaction_items = MAX_TRANSACTION_ITEMS
    # A customer's one transaction: its core, the aggregate parts, the profile and recommendation of a customer
    # moving from the old layout, and a new customer's check of its tombstone (its events and a flush's month
    # markers are written apart from it).
    extra_items_per_customer = 1 + len(layout.AGGREGATE_PARTS) + 2 + 1

    # ---------------------------------------------------------------- reads

    @staticmethod
    def _part_names(raw: dict[str, Any], wanted: tuple[str, ...]) -> list[str]:
        return [p for p in wanted if p in raw.get("parts", {}).get("SS", [])]

    def _records(
        self,
        raws: list[dict[str, Any]],
        wanted: Mapping[str, tuple[str, ...]] | None = None,
        consistent: bool = True,
        also: list[dict[str, Any]] | None = None,
        decoded: Mapping[str, tuple[dict[str, Any], layout.Core]] | None = None,
    ) -> tuple[dict[str, CustomerRecord], list[dict[str, Any]]]:
        """Customer items joined with their parts (read in one batch, with ``also``: more events-table keys).

        ``wanted``: the parts to read by customer id (default: all); ``decoded``: cores the caller decoded already,
        by customer id. Returns the records by id and the items read for ``also``.
        """
        wanted = wanted or {}
        keys = [
            {"customer_id": raw["customer_id"], "sk": {"S": layout.part_sk(p)}}
            for raw in raws
            for p in self._part_names(raw, wanted.get(raw["customer_id"]["S"], layout.ALL_PARTS))
        ] + (also or [])
        parts: dict[str, dict[str, dict[str, Any]]] = {}
        extra: list[dict[str, Any]] = []
        if keys:
            for _, item in self._batch_get({self.events_table: keys}, consistent):
                sk = item["sk"]["S"]
                if sk.startswith(layout.PART_PREFIX):
                    parts.setdefault(item["customer_id"]["S"], {})[sk[len(layout.PART_PREFIX) :]] = item
                else:
                    extra.append(item)
        records = {}
        for raw in raws:
            cid = raw["customer_id"]["S"]
            rec = self._record(raw, parts.get(cid, {}), (decoded or {}).get(cid))
            records[rec.customer_id] = rec
        return records, extra

    def _record(
        self,
        raw: dict[str, Any],
        parts: dict[str, dict[str, Any]] | None = None,
        decoded: tuple[dict[str, Any], layout.Core] | None = None,
    ) -> CustomerRecord:
        """A customer from its item and its part items (either layout); ``decoded``: its core, decoded already."""
        parts = parts or {}
        doc = from_item({k: v for k, v in raw.items() if k != "core"})
        legacy = "agg" in doc or "profile" in doc or "recommendation" in doc
        if "core" in raw:
            core, state = decoded or layout.decode_core(raw["core"]["B"])
        else:
            core, state = doc.get("agg"), layout.Core()
        decoded = {name: layout.unpack(item["data"]["B"]) for name, item in parts.items() if name != layout.PROFILE}
        profile = from_item(parts[layout.PROFILE]).get("profile") if layout.PROFILE in parts else doc.get("profile")
        rec = CustomerRecord(
            customer_id=doc["customer_id"],
            version=int(doc.get("version", 0)),
            exists=True,
            aggregates=layout.join(core, decoded),
            profile=profile,
            recommendation=decoded.get(layout.RECOMMENDATION, doc.get("recommendation")),
            updated_at=doc.get("updated_at"),
            consent_at=doc.get("consent_at"),
            erased_at=doc.get("erased_at"),
            channel_sends={c: int(doc[f"sends_{c}"]) for c in CHANNELS if doc.get(f"sends_{c}")},
        )
        known = self._stored.get((rec.customer_id, rec.version))
        confirmed = known.confirmed if known else set()
        self._remember(rec.customer_id, rec.version, _Stored(state, legacy or bool(doc.get("lm")), confirmed))
        return rec

    def load_ingest_state(
        self,
        customer_ids: Iterable[str],
        event_keys: Iterable[tuple[str, str]],
        moment_keys: Iterable[tuple[str, str]],
        event_types: Mapping[str, set[str]] | None = None,
    ) -> IngestState:
        """Read, consistently, what ingestion must know: customers, which events and moments exist.

        Two round trips: the customer items and the events first, then what the fold needs of each customer: the
        parts its events touch (``event_types``: by customer; all parts when not given), the profile if nothing
        was learnt yet (its time zone counts the first moments), and the month markers of moments its core cannot
        answer for.
        """
        cids = sorted(set(customer_ids))
        keys = {
            self.customers_table: [{"customer_id": {"S": c}} for c in cids],
            self.events_table: [
                {"customer_id": {"S": c}, "sk": {"S": event_sk(e)}} for c, e in sorted(set(event_keys))
            ],
        }
        keys = {t: k for t, k in keys.items() if k}
        raws: list[dict[str, Any]] = []
        events: set[tuple[str, str]] = set()
        for table, raw in self._batch_get(keys):
            if table == self.customers_table:
                raws.append(raw)
            else:
                events.add((raw["customer_id"]["S"], raw["sk"]["S"][2:]))
        # A customer's core tells which moments it holds, and up to which hour month markers may hold others;
        # its journal, which events were folded: those whose items are not seen stored are stored again.
        journal: set[tuple[str, str]] = set()
        also: dict[tuple[str, str], dict[str, Any]] = {}
        core_moments: dict[str, set[str]] = {}
        flushed: dict[str, int] = {}
        wanted_parts: dict[str, tuple[str, ...]] = {}
        decoded: dict[str, tuple[dict[str, Any], layout.Core]] = {}
        legacy: set[str] = set()
        for raw in raws:
            cid = raw["customer_id"]["S"]
            parts = layout.parts_touched(event_types[cid]) if event_types and cid in event_types else None
            names = tuple(layout.AGGREGATE_PARTS) if parts is None else tuple(sorted(parts))
            if "core" in raw:
                core, state = decoded[cid] = layout.decode_core(raw["core"]["B"])
                core_moments[cid] = set(state.unflushed)
                if state.flushed_max is not None:
                    flushed[cid] = state.flushed_max
                known = self._stored.get((cid, int(raw.get("version", {}).get("N", 0))))
                for event_id, _ in state.journal:
                    journal.add((cid, event_id))
                    if not (known and event_id in known.confirmed):
                        also[(cid, event_sk(event_id))] = {"customer_id": {"S": cid}, "sk": {"S": event_sk(event_id)}}
                if not layout.join(core, {}).has_data:
                    names = (layout.PROFILE, *names)
            else:
                names = (layout.PROFILE, *names)
            wanted_parts[cid] = names
            if "agg" in raw or "lm" in raw:
                legacy.add(cid)
        wanted = sorted(set(moment_keys))
        for c, m in wanted:
            hour = int(m.split("#", 1)[1])
            if m not in core_moments.get(c, ()) and hour <= flushed.get(c, -1):
                month = layout.month_sk(layout.month_of(hour))
                also[(c, month)] = {"customer_id": {"S": c}, "sk": {"S": month}}
            if c in legacy:
                also[(c, m)] = {"customer_id": {"S": c}, "sk": {"S": m}}
        records, extra = self._records(raws, wanted_parts, also=list(also.values()), decoded=decoded)
        new = self._absent([c for c in cids if c not in records])
        customers = {c: records.get(c) or new[c] for c in cids}
        months: dict[tuple[str, str], dict[str, set[int]]] = {}
        stored_moments: set[tuple[str, str]] = set()
        for item in extra:
            cid, sk = item["customer_id"]["S"], item["sk"]["S"]
            if sk.startswith("e#"):
                events.add((cid, sk[2:]))
            elif sk.startswith(layout.MONTH_PREFIX):
                months[(cid, sk)] = {k: {int(h) for h in item.get(k, {}).get("NS", [])} for k in ("m", "p")}
            else:
                stored_moments.add((cid, sk))  # a marker written before the split
        moments = set()
        for c, m in wanted:
            kind, h = m.split("#", 1)
            month = months.get((c, layout.month_sk(layout.month_of(int(h)))), {})
            if m in core_moments.get(c, ()) or (c, m) in stored_moments or int(h) in month.get(kind, ()):
                moments.add((c, m))
        for cid, event_id in journal & events:
            self._stored[(cid, customers[cid].version)].confirmed.add(event_id)
        return IngestState(customers, events, moments, folded_events=journal - events)

    def _absent(self, customer_ids: list[str]) -> dict[str, CustomerRecord]:
        """Customers about to be created: those erased before carry the time, and their first version starts past
        any of their earlier life (what this store remembers of that life cannot be taken for the new one)."""
        tombstones = self._tombstones(customer_ids)
        out = {}
        for cid in customer_ids:
            erased_at = tombstones.get(cid, {}).get("erased_at", {}).get("S")
            version = int(parse_ts(erased_at).timestamp() * 1000) if erased_at else 0
            out[cid] = CustomerRecord(cid, version=version, erased_at=erased_at)
        return out

    def absent_customer(self, customer_id: str) -> CustomerRecord:
        return self._absent([customer_id])[customer_id]

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        resp = self._call(
            "get_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ConsistentRead=True,
        )
        if "Item" not in resp:
            return None
        return self._records([resp["Item"]])[0][customer_id]

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

    def _counted_moments(self, customer_id: str) -> set[str]:
        """Every counted moment key still stored: on the core, in month markers, as markers from before the split."""
        resp = self._call(
            "get_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ConsistentRead=True,
            ProjectionExpression="core",
        )
        item = resp.get("Item", {})
        keys = set(layout.decode_core(item["core"]["B"])[1].unflushed) if "core" in item else set()
        for item in self._query_sks(customer_id, layout.MONTH_PREFIX):
            keys |= {f"{k}#{h}" for k in ("m", "p") for h in item.get(k, {}).get("NS", [])}
        for prefix in ("m#", "p#"):
            keys |= {item["sk"]["S"] for item in self._query_sks(customer_id, prefix)}
        return keys

    def engagement_moments(self, customer_id: str) -> list[int]:
        """Every engagement moment (UTC epoch hour) still stored for a customer."""
        return sorted(int(k[2:]) for k in self._counted_moments(customer_id) if k.startswith("m#"))

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

    def _tombstone_check(self, record: CustomerRecord) -> dict[str, Any]:
        """A new customer's write holds only if the id's tombstone is as it was read: none, or the same erasure
        (an erasure between the read and the write makes the write read again, and drop the earlier events)."""
        check: dict[str, Any] = {
            "TableName": self.customers_table,
            "Key": {"customer_id": {"S": self._tombstone_key(record.customer_id)}},
            "ConditionExpression": "attribute_not_exists(customer_id)",
        }
        if record.erased_at:
            check["ConditionExpression"] = "erased_at = :seen"
            check["ExpressionAttributeValues"] = {":seen": {"S": record.erased_at}}
        return {"ConditionCheck": check}

    def _read_state(self, record: CustomerRecord) -> _Stored:
        """What this store read of the record's version; a record it did not read must be read again."""
        if not record.exists:
            return _Stored(layout.Core())
        stored = self._stored.get((record.customer_id, record.version))
        if stored is None:
            raise ConflictError(f"customer {record.customer_id!r} version {record.version} was not read here")
        return stored

    def _customer_items(
        self,
        record: CustomerRecord,
        aggregates: CustomerAggregates | None,
        moments: list[str],
        now: datetime,
        sets: list[str] | None = None,
        values: dict[str, Any] | None = None,
        new_parts: dict[str, dict[str, Any]] | None = None,
        folded: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], _Stored]:
        """The writes of a customer's next version: month markers, then its core with the parts that changed.

        ``aggregates`` (``None``: unchanged) are split into the core and the parts that changed; ``moments`` newly
        counted go to the core, and a flush's to month markers; ``new_parts`` are other parts to store (the
        profile); ``folded`` events go to the journal until their items are seen stored. A customer still in the
        old layout moves to the split one. Returns the month-marker updates (idempotent, written first), the core's
        items (one update, with the parts' puts when any: one transaction) and what the core then holds.
        """
        cid = record.customer_id
        stored = self._read_state(record)
        version = record.version + 1
        cond = self._customer_condition(record)
        sets = [*(sets or []), "#v = :next", "updated_at = :now"]
        values = {
            **(values or {}),
            ":next": {"N": str(version)},
            ":now": {"S": now.isoformat()},
            **cond["ExpressionAttributeValues"],
        }
        keep, months = layout.flush(stored.core.unflushed + moments)
        moved = [h for hours in months.values() for hs in hours.values() for h in hs]
        flushed_max = max([*moved, stored.core.flushed_max or -1]) if moved else stored.core.flushed_max
        oldest = int(now.timestamp()) - JOURNAL_SECONDS
        journal = [e for e in stored.core.journal if e[0] not in stored.confirmed and int(e[1]) > oldest]
        journal += [[event_id, int(now.timestamp())] for event_id in folded or []]
        core = layout.Core(keep, flushed_max, journal)
        month_items = []
        for month, hours in sorted(months.items()):
            adds = {k: hs for k, hs in hours.items() if hs}
            month_items.append(
                {
                    "TableName": self.events_table,
                    "Key": {"customer_id": {"S": cid}, "sk": {"S": layout.month_sk(month)}},
                    "UpdateExpression": "ADD " + ", ".join(f"{k} :{k}" for k in adds) + " SET expires_at = :exp",
                    "ExpressionAttributeValues": {
                        **{f":{k}": {"NS": [str(h) for h in hs]} for k, hs in adds.items()},
                        ":exp": {"N": str(layout.month_end_hour(month) * 3600 + self.retention_seconds)},
                    },
                }
            )
        parts = dict(new_parts or {})
        if stored.legacy:  # the old layout's profile and recommendation move to their parts
            if record.profile is not None and layout.PROFILE not in parts:
                parts[layout.PROFILE] = {"profile": _ser.serialize(to_dynamo(record.profile))}
            if record.recommendation is not None:
                parts[layout.RECOMMENDATION] = {"data": {"B": layout.pack(record.recommendation)}}
        agg = aggregates if aggregates is not None else record.aggregates
        changed = layout.changed_parts(record.aggregates, agg)
        if stored.legacy:
            changed = [n for n in layout.AGGREGATE_PARTS if any(getattr(agg, f) for f in layout.AGGREGATE_PARTS[n])]
        for name in changed:
            parts[name] = {"data": {"B": layout.encode_part(agg, name)}}
        items = [self._part_put(cid, name, attrs, version) for name, attrs in sorted(parts.items())]
        if aggregates is not None or moments or months or folded or stored.legacy or journal != stored.core.journal:
            sets.append("core = :core")
            values[":core"] = {"B": layout.encode_core(agg, core)}
        if not record.exists and record.erased_at:  # back after an erasure: its earlier events stay refused
            sets.append("erased_at = :erased")
            values[":erased"] = {"S": record.erased_at}
        if not record.exists:
            items.append(self._tombstone_check(record))
        update = "SET " + ", ".join(sets)
        if parts:
            update += " ADD parts :parts"
            values[":parts"] = {"SS": sorted(parts)}
        if stored.legacy:
            update += " REMOVE agg, profile, recommendation"
            values[":lm"] = {"BOOL": True}
            update = update.replace("SET ", "SET lm = :lm, ", 1)
        items.append(
            {
                "Update": {
                    "TableName": self.customers_table,
                    "Key": {"customer_id": {"S": cid}},
                    "UpdateExpression": update,
                    "ConditionExpression": cond["ConditionExpression"],
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": values,
                }
            }
        )
        return month_items, items, _Stored(core)

    def write_items(self, write: CustomerWrite) -> int:
        """How much of a commit one customer's write takes: its events (25 a batch write) and its transaction."""
        return len(write.events) + self.extra_items_per_customer

    def commit_writes(self, writes: list[CustomerWrite], now: datetime) -> list[KairosError | None]:
        """Commit each customer's write on its own, several at once.

        A write folds, then stores: the core (with the new moments, the changed parts and the ids of the events
        folded, in its journal) is written conditionally on the version read, then the events, 25 a request for
        all the customers together. A write that stops between the two leaves the events in the journal: the next
        read of the customer finds them folded but not stored, and the retried request stores them without
        folding them again. Costs per event: its item and the core's (under a kilobyte), about 2 WCU instead of
        twice both in a transaction.
        """
        errors = self._threaded(lambda w: self._commit_core(w, now), writes)
        # The events of every committed core, 25 a request (the core named them: no other request folds them).
        fresh = [(i, ev) for i, w in enumerate(writes) if errors[i] is None for ev in w.events]
        chunks = [fresh[k : k + MAX_BATCH_WRITE_ITEMS] for k in range(0, len(fresh), MAX_BATCH_WRITE_ITEMS)]
        outcomes = self._threaded(self._put_chunk(writes), chunks)
        for chunk, error in zip(chunks, outcomes, strict=True):
            for i, _ in chunk:
                errors[i] = errors[i] or error
        # Events an earlier request folded and did not store: one at a time, unless another request stored them.
        for i, w in enumerate(writes):
            if errors[i] is None and w.unstored:
                try:
                    self._store_events(w.record.customer_id, w.unstored)
                except KairosError as exc:
                    errors[i] = exc
        for i, w in enumerate(writes):
            if errors[i] is None and w.events:
                # The next write on top of this version drops the journal entries it knows are stored.
                stored = self._stored.get((w.record.customer_id, w.record.version + 1))
                if stored is not None:
                    stored.confirmed.update(e.event_id for e in w.events)
        return errors

    def _commit_core(self, w: CustomerWrite, now: datetime) -> KairosError | None:
        if not w.events:
            return None
        try:
            month_items, items, state = self._customer_items(
                w.record, w.aggregates, w.moments, now, folded=[e.event_id for e in w.events]
            )
            self._write_customer(month_items, items)
        except KairosError as exc:
            return exc
        self._remember(w.record.customer_id, w.record.version + 1, state)
        return None

    def commit_ingest(self, writes: list[CustomerWrite], now: datetime) -> None:
        """Commit the writes (see :meth:`commit_writes`); raise the first error.

        Raises
        ------
        ConflictError
            A customer changed since it was read: its write changed nothing.
        InvalidInputError
            DynamoDB refused the data itself (an item over 400 KB): writing the same again will fail again.
        ThrottledError
            Throttled after the SDK's retries.
        StoreError
            Any other failure: a 5xx or no answer after the SDK's retries (transient), a missing table or
            permission (not transient, see ``kairos.http.api.is_transient``).
        """
        for error in self.commit_writes(writes, now):
            if error is not None:
                raise error

    def put_profile(
        self,
        record: CustomerRecord,
        profile: dict[str, Any],
        aggregates: CustomerAggregates | None,
        now: datetime,
    ) -> None:
        """Replace the profile (and, after a time-zone change, the re-bucketed aggregates) if unchanged since read."""
        sets, values = [], {}
        if (record.profile or {}).get("consent") != profile.get("consent"):
            sets.append("consent_at = :now")
        month_items, items, state = self._customer_items(
            record,
            aggregates,
            [],
            now,
            sets,
            values,
            new_parts={layout.PROFILE: {"profile": _ser.serialize(to_dynamo(profile))}},
        )
        self._write_customer(month_items, items)
        self._remember(record.customer_id, record.version + 1, state)

    def put_recommendation(self, customer_id: str, recommendation: dict[str, Any]) -> None:
        """Store a scoring result on an existing customer (never creates a customer, nor revives an erased one)."""
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.customers_table,
                            "Key": {"customer_id": {"S": customer_id}},
                            "UpdateExpression": "ADD parts :rec",
                            # a tombstone alone is not a customer: only what was learnt since the erasure is scored
                            "ConditionExpression": _LIVE_CUSTOMER,
                            "ExpressionAttributeValues": {":rec": {"SS": [layout.RECOMMENDATION]}},
                        }
                    },
                    self._part_put(customer_id, layout.RECOMMENDATION, {"data": {"B": layout.pack(recommendation)}}, 0),
                ]
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
                ConditionExpression=_LIVE_CUSTOMER,
                ExpressionAttributeNames={"#c": f"sends_{channel}"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ConflictError:
            return  # erased meanwhile

    # ---------------------------------------------------------------- erasure

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """Customers that exist among ``customer_ids`` (consistent reads, 100 a call)."""
        keys = {self.customers_table: [{"customer_id": {"S": c}} for c in sorted(set(customer_ids))]}
        if not keys[self.customers_table]:
            return {}
        raws = [raw for _, raw in self._batch_get(keys)]
        return {cid: rec for cid, rec in self._records(raws)[0].items() if not rec.erased}

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
        if not key.startswith("__"):
            record = self.get_customer(key)
            return record.recommendation if record else None
        resp = self._call(
            "get_item",
            TableName=self.customers_table,
            Key={"customer_id": {"S": key}},
            ProjectionExpression="recommendation",
        )
        item = resp.get("Item")
        return from_item(item).get("recommendation") if item else None
