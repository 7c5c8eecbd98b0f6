"""In-memory implementations of every port in ``kairos.customers.ports``, for unit tests of the logic without moto.

Each keeps the contract its AWS adapter keeps (conditional writes, idempotent names, claim-before-send), so a
logic test that passes here exercises the same decisions as it would against DynamoDB, S3 and Step Functions.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kairos.audiences.ports import SegmentStore
from kairos.core.errors import ConflictError, NotFoundError, ProviderError, ProviderThrottled, ProviderUnavailable
from kairos.core.timeutil import parse_ts
from kairos.customers.domain import CustomerRecord, IngestState
from kairos.customers.ports import CustomerStore, DecisionLog, EventArchive
from kairos.insights.ports import InsightStore
from kairos.journeys.ports import IntentStore, JourneyStarter, JourneyStore, TaskSink
from kairos.messaging.domain import TRANSIENT
from kairos.messaging.ports import MessageLog, PolicyStore, Provider
from kairos.models.ports import ProductCatalogue
from kairos.promotions.domain import PromoCodesAdded, PromoPoolView, TakenCode
from kairos.promotions.ports import PromoPools
from tests.fake_variant_promotions import InMemoryVariantPromotions

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.customers.domain import CustomerWrite
    from kairos.messaging.domain import Rendered


class InMemoryCustomerStore(CustomerStore):
    """Customers, events and moments in dicts; every write checks its conditions first, then applies all."""

    def __init__(self, max_transaction_items: int = 100) -> None:
        self.max_transaction_items = max_transaction_items
        self.customers: dict[str, CustomerRecord] = {}
        self.events: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # cid -> event id -> stored item
        self.moments: dict[str, set[str]] = defaultdict(set)  # cid -> {"m#<hour>", "p#<hour>"}
        self.fallbacks: dict[str, dict[str, Any]] = {}
        self.decision_notes: dict[str, set[str]] = defaultdict(set)  # cid -> decision-log objects naming them
        # Customers whose aggregates were ever written: DynamoDB has no ``agg`` attribute on a customer made
        # by a profile alone (no events, no time-zone change), and its erasure reports ``aggregates: False``.
        self.with_aggregates: set[str] = set()
        self.commits = 0
        self.fail_next_commits = 0  # inject conflicts: the next N commits raise ConflictError
        # inject store failures: a transaction holding one of these customers raises that customer's error
        self.commit_errors: dict[str, Exception] = {}

    # ------------------------------------------------------------------ reads

    def load_ingest_state(
        self,
        customer_ids: Iterable[str],
        event_keys: Iterable[tuple[str, str]],
        moment_keys: Iterable[tuple[str, str]],
        event_types: Any = None,
    ) -> IngestState:
        cids = set(customer_ids)
        customers = {c: self.get_customer(c) or CustomerRecord(c) for c in cids}
        events = {(c, e) for c, e in event_keys if e in self.events.get(c, {})}
        moments = {(c, m) for c, m in moment_keys if m in self.moments.get(c, set())}
        return IngestState(customers, events, moments)

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        rec = self.customers.get(customer_id)
        return copy.deepcopy(rec) if rec is not None else None

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        return {c: r for c in set(customer_ids) if (r := self.get_customer(c)) is not None and not r.erased}

    def scan_customers(
        self, shard: int, total_shards: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        ids = sorted(
            c
            for c, rec in self.customers.items()
            if _shard_of(c, total_shards) == shard and not c.startswith("__") and not rec.erased
        )
        if start_after is not None:
            ids = [c for c in ids if c > start_after]
        page = ids[:limit]
        cursor = page[-1] if len(ids) > limit else None
        return [copy.deepcopy(self.customers[c]) for c in page], cursor

    def approximate_count(self) -> int | None:
        return len(self.customers)

    def engagement_moments(self, customer_id: str) -> list[int]:
        return sorted(int(m[2:]) for m in self.moments.get(customer_id, set()) if m.startswith("m#"))

    def customer_events(self, customer_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(item["record"]) for item in self.events.get(customer_id, {}).values()]

    def absent_customer(self, customer_id: str) -> CustomerRecord:
        rec = self.customers.get(customer_id)
        return copy.deepcopy(rec) if rec is not None else CustomerRecord(customer_id)

    def message_events(self, customer_id: str, message_prefix: str) -> list[dict[str, Any]]:
        return [
            {"type": item["type"], "ts": item["ts"], "message_id": item["message_id"]}
            for item in self.events.get(customer_id, {}).values()
            if (item.get("message_id") or "").startswith(message_prefix)
        ]

    def get_recommendation(self, key: str) -> dict[str, Any] | None:
        if key in self.fallbacks:
            return copy.deepcopy(self.fallbacks[key])
        rec = self.customers.get(key)
        return copy.deepcopy(rec.recommendation) if rec is not None else None

    # ------------------------------------------------------------------ writes

    def _check_version(self, record: CustomerRecord) -> None:
        current = self.customers.get(record.customer_id)
        if record.exists:
            if current is None or current.version != record.version:
                raise ConflictError(f"customer {record.customer_id} changed since it was read")
        elif current is not None:
            raise ConflictError(f"customer {record.customer_id} exists already")

    def commit_ingest(self, writes: list[CustomerWrite], now: datetime) -> None:
        if self.fail_next_commits > 0:
            self.fail_next_commits -= 1
            raise ConflictError("injected conflict")
        for w in writes:
            if w.record.customer_id in self.commit_errors:
                raise self.commit_errors[w.record.customer_id]
        if sum(w.size for w in writes) > self.max_transaction_items:
            raise ValueError(f"a transaction holds at most {self.max_transaction_items} items")
        for w in writes:  # every condition first, as a transaction does
            cid = w.record.customer_id
            self._check_version(w.record)
            if any(ev.event_id in self.events.get(cid, {}) for ev in w.events):
                raise ConflictError("an event exists already")
            if any(m in self.moments.get(cid, set()) for m in w.moments):
                raise ConflictError("a moment was counted already")
        for w in writes:
            cid = w.record.customer_id
            for ev in w.events:
                self.events[cid][ev.event_id] = {
                    "record": ev.to_record(),
                    "type": ev.type,
                    "message_id": ev.message_id,
                    "ts": int(ev.timestamp.timestamp()),
                }
            self.moments[cid] |= set(w.moments)
            current = self.customers.get(cid)
            rec = copy.deepcopy(current) if current is not None else CustomerRecord(cid, exists=True)
            rec.aggregates = copy.deepcopy(w.aggregates)
            rec.version = w.record.version + 1
            rec.updated_at = now.isoformat()
            self.customers[cid] = rec
            self.with_aggregates.add(cid)
        self.commits += 1

    def put_profile(
        self, record: CustomerRecord, profile: dict[str, Any], aggregates: CustomerAggregates | None, now: datetime
    ) -> None:
        self._check_version(record)
        current = self.customers.get(record.customer_id)
        rec = copy.deepcopy(current) if current is not None else CustomerRecord(record.customer_id, exists=True)
        if (rec.profile or {}).get("consent") != profile.get("consent"):
            rec.consent_at = now.isoformat()
        rec.profile = copy.deepcopy(profile)
        if aggregates is not None:
            rec.aggregates = copy.deepcopy(aggregates)
            self.with_aggregates.add(record.customer_id)
        rec.version = record.version + 1
        rec.updated_at = now.isoformat()
        self.customers[record.customer_id] = rec

    def put_recommendation(self, customer_id: str, recommendation: dict[str, Any]) -> None:
        if customer_id in self.customers and not self.customers[customer_id].erased:
            self.customers[customer_id].recommendation = copy.deepcopy(recommendation)

    def count_send(self, customer_id: str, channel: str) -> None:
        rec = self.customers.get(customer_id)
        if rec is not None and not rec.erased:
            rec.channel_sends[channel] = rec.channel_sends.get(channel, 0) + 1

    def put_fallback(self, key: str, recommendation: dict[str, Any]) -> None:
        self.fallbacks[key] = copy.deepcopy(recommendation)

    # ------------------------------------------------------------------ erasure

    def tombstone(self, customer_id: str, now: datetime) -> dict[str, Any]:
        old = self.customers.get(customer_id)
        had_aggregates = customer_id in self.with_aggregates
        self.with_aggregates.discard(customer_id)
        self.customers[customer_id] = CustomerRecord(
            customer_id, version=(old.version if old else 0) + 1, exists=True, erased_at=now.isoformat()
        )
        return {
            "existed": old is not None,
            "profile": bool(old and old.profile),
            "aggregates": old is not None and had_aggregates,
            "erased_before": old.erased_at if old else None,
        }

    def forget_tombstone(self, customer_id: str, erased_at: datetime) -> None:
        rec = self.customers.get(customer_id)
        if rec is not None and rec.erased and rec.erased_at == erased_at.isoformat():
            del self.customers[customer_id]

    def erasure_inventory(self, customer_id: str) -> dict[str, Any]:
        events = self.events.get(customer_id, {})
        return {
            "events": len(events),
            "engagement_moments": len(self.moments.get(customer_id, set())),
            "event_dates": sorted({time.strftime("%Y-%m-%d", time.gmtime(e["ts"])) for e in events.values()}),
            "decision_objects": sorted(self.decision_notes.get(customer_id, set())),
        }

    def delete_customer_items(self, customer_id: str) -> None:
        self.events.pop(customer_id, None)
        self.moments.pop(customer_id, None)
        self.decision_notes.pop(customer_id, None)

    def erased_at(self, customer_ids: Iterable[str]) -> dict[str, str]:
        return {
            c: rec.erased_at for c in set(customer_ids) if (rec := self.customers.get(c)) is not None and rec.erased_at
        }

    def note_decisions(self, customer_ids: Iterable[str], object_key: str, expires_at: int) -> None:
        for c in customer_ids:
            self.decision_notes[c].add(object_key)


def _shard_of(customer_id: str, total_shards: int) -> int:
    return int(hashlib.sha256(customer_id.encode()).hexdigest(), 16) % total_shards


class InMemoryEventArchive(EventArchive):
    """Archived records by object key (``events/dt=<date>/<batch>``)."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}

    def write_batch(self, records: Iterable[dict[str, Any]], batch_id: str) -> list[str]:
        by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_date[parse_ts(r["timestamp"]).astimezone(UTC).strftime("%Y-%m-%d")].append(copy.deepcopy(r))
        keys = []
        for date, recs in sorted(by_date.items()):
            key = f"events/dt={date}/{batch_id}"
            self.objects[key] = recs
            keys.append(key)
        return keys

    def purge_customer(self, customer_id: str, dates: Iterable[str], until: str | None = None) -> tuple[int, int]:
        def erased(r: dict[str, Any]) -> bool:
            return r.get("customer_id") == customer_id and (
                until is None or parse_ts(r["timestamp"]) <= parse_ts(until)
            )

        objects = lines = 0
        for date in set(dates):
            for key in [k for k in self.objects if k.startswith(f"events/dt={date}/")]:
                kept = [r for r in self.objects[key] if not erased(r)]
                removed = len(self.objects[key]) - len(kept)
                if removed:
                    objects += 1
                    lines += removed
                    if kept:
                        self.objects[key] = kept
                    else:
                        del self.objects[key]
        return objects, lines

    def records(self) -> list[dict[str, Any]]:
        return [r for recs in self.objects.values() for r in recs]


class InMemorySegmentStore(SegmentStore):
    def __init__(self) -> None:
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.segments: dict[str, dict[str, Any]] = {}

    def put_segment(self, segment: dict[str, Any]) -> None:
        self.segments[segment["name"]] = copy.deepcopy(segment)

    def get_segment(self, name: str) -> dict[str, Any]:
        if name not in self.segments:
            raise NotFoundError(f"segment '{name}' not found")
        return copy.deepcopy(self.segments[name])

    def list_segments(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.segments[n]) for n in sorted(self.segments)]

    def delete_segment(self, name: str) -> None:
        if self.segments.pop(name, None) is None:
            raise NotFoundError(f"segment '{name}' not found")


class RecordingJourneyStarter(JourneyStarter):
    """Started journeys by name; a name used before starts nothing, as Step Functions refuses it."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        if name in self.started:
            return False
        self.started[name] = copy.deepcopy(payload)
        return True


class InMemoryDecisionLog(DecisionLog):
    """Decision pages by ``<campaign>/<page>``; notes each named customer on the customer store, like S3's."""

    def __init__(self, customers: InMemoryCustomerStore | None = None) -> None:
        self.pages: dict[str, list[dict[str, Any]]] = {}
        self.customers = customers

    def read(self, campaign_id: str, days: Iterable[Any]) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for key, records in self.pages.items():
            if key.startswith(f"{campaign_id}/"):
                latest.update({r["customer_id"]: copy.deepcopy(r) for r in records})
        return [latest[c] for c in sorted(latest)]

    def write(self, campaign_id: str, page_key: str, records: list[dict[str, Any]]) -> None:
        key = f"{campaign_id}/{page_key}"
        named = {r["customer_id"] for r in records if r.get("customer_id")}
        if self.customers is not None:
            self.customers.note_decisions(named, key, 0)
        self.pages[key] = copy.deepcopy(records)
        if self.customers is not None:
            gone = named - set(self.customers.get_customers(named))
            self.pages[key] = [r for r in self.pages[key] if r.get("customer_id") not in gone]

    def purge_customer(self, customer_id: str, objects: Iterable[str]) -> tuple[int, int]:
        count = lines = 0
        for key in set(objects):
            kept = [r for r in self.pages.get(key, []) if r.get("customer_id") != customer_id]
            removed = len(self.pages.get(key, [])) - len(kept)
            if removed:
                count += 1
                lines += removed
                self.pages[key] = kept
        return count, lines

    def records(self) -> list[dict[str, Any]]:
        return [r for recs in self.pages.values() for r in recs]


class InMemoryMessageLog(MessageLog):
    """The message log's claim/finish contract, with every finished attempt kept as the archive would."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.archived: list[dict[str, Any]] = []

    def claim(self, record: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        existing = self.records.get(record["message_id"])
        if existing is None:
            record["attempt"] = 1
            self.records[record["message_id"]] = copy.deepcopy(record)
            return True, None
        if existing.get("status") not in TRANSIENT:
            return False, copy.deepcopy(existing)
        record["attempt"] = int(existing.get("attempt") or 1) + 1
        # As the DynamoDB adapter's conditional update: status, attempt and claim time change, the rest stays.
        self.records[record["message_id"]] = {
            **existing,
            "status": "sending",
            "attempt": record["attempt"],
            "claimed_at": record["claimed_at"],
        }
        return True, None

    def finish(self, record: dict[str, Any]) -> None:
        self.records[record["message_id"]] = copy.deepcopy(record)
        self.archived.append(copy.deepcopy(record))

    def settle(self, record: dict[str, Any], attempt: int) -> bool:
        current = self.records.get(record["message_id"])
        if current is None or current.get("status") != "sending" or int(current.get("attempt") or 1) != attempt:
            return False
        self.finish(record)
        return True

    def sent_since(self, customer_id: str, channel: str, since: datetime, excluding: str | None = None) -> int:
        return sum(
            1
            for r in self.records.values()
            if r["customer_id"] == customer_id
            and r["channel"] == channel
            and r.get("status") in ("sent", "unconfirmed", "sending")
            and r["message_id"] != excluding
            and parse_ts(r["claimed_at"]) >= since
        )

    def get(self, message_id: str) -> dict[str, Any] | None:
        rec = self.records.get(message_id)
        return copy.deepcopy(rec) if rec is not None else None

    def for_customer(self, customer_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.records.values() if r["customer_id"] == customer_id]

    def recent_sends(
        self, customer_id: str, since: datetime, excluding: str | None = None
    ) -> list[tuple[str, datetime]]:
        return [
            (r["channel"], parse_ts(r["claimed_at"]))
            for r in self.records.values()
            if r["customer_id"] == customer_id
            and r.get("status") in ("sent", "unconfirmed", "sending")
            and r["message_id"] != excluding
            and parse_ts(r["claimed_at"]) >= since
        ]

    def for_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.records.values() if r.get("campaign_id") == campaign_id]

    def erase_customer(self, customer_id: str) -> tuple[int, int]:
        ids = [m for m, r in self.records.items() if r["customer_id"] == customer_id]
        for m in ids:
            del self.records[m]
        before = len(self.archived)
        self.archived = [r for r in self.archived if r["customer_id"] != customer_id]
        return len(ids), before - len(self.archived)


class FakeProvider(Provider):
    """Delivers into ``sent``; ``outcomes`` scripts what the next calls do (``"ok"``, ``"throttle"``, …)."""

    def __init__(self, channel: str, outcomes: list[str] | None = None) -> None:
        self.channel = channel
        self.outcomes = list(outcomes or [])
        self.sent: list[tuple[Rendered, str, dict[str, str]]] = []

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "throttle":
            raise ProviderThrottled(f"{self.channel} throttled")
        if outcome == "unavailable":
            raise ProviderUnavailable(f"{self.channel} unavailable")
        if outcome == "reject":
            raise ProviderError(f"{self.channel} rejected the address")
        self.sent.append((message, message_id, dict(tags)))
        return f"{self.channel}-{len(self.sent)}"


class InMemoryJourneyStore(InMemoryVariantPromotions, JourneyStore, IntentStore):
    """Journeys with every version, and paths keyed by (customer, journey#entry), with ``seq`` checks."""

    def __init__(self) -> None:
        self.journeys: dict[str, dict[str, Any]] = {}
        self.versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.paths: dict[tuple[str, str], dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.scans: dict[str, dict[str, Any]] = {}

    def create_journey(self, doc: dict[str, Any]) -> None:
        if doc["journey_id"] in self.journeys:
            raise ConflictError(doc["journey_id"])
        self.journeys[doc["journey_id"]] = copy.deepcopy(doc)
        self.versions[(doc["journey_id"], doc["version"])] = copy.deepcopy(doc["definition"])

    def get_journey(self, journey_id: str, version: int | None = None) -> dict[str, Any]:
        if journey_id not in self.journeys:
            raise NotFoundError(journey_id)
        doc = copy.deepcopy(self.journeys[journey_id])
        if version is not None:
            if (journey_id, version) not in self.versions:
                raise NotFoundError(f"{journey_id} v{version}")
            doc["version"], doc["definition"] = version, copy.deepcopy(self.versions[(journey_id, version)])
        return doc

    def put_version(self, doc: dict[str, Any], expected_version: int) -> None:
        current = self.journeys.get(doc["journey_id"])
        if current is None or current["version"] != expected_version:
            raise ConflictError(doc["journey_id"])
        new = {**copy.deepcopy(doc), "version": expected_version + 1}
        self.journeys[doc["journey_id"]] = new
        self.versions[(doc["journey_id"], new["version"])] = copy.deepcopy(doc["definition"])

    def set_journey_status(self, journey_id: str, status: str, allowed_from: tuple[str, ...], now_iso: str) -> None:
        doc = self.journeys.get(journey_id)
        if doc is None:
            raise NotFoundError(journey_id)
        if doc["status"] not in allowed_from:
            raise ConflictError(f"journey is {doc['status']}")
        doc.update(status=status, updated_at=now_iso)

    def list_journeys(
        self, limit: int, token: str | None, kind: str = "journey"
    ) -> tuple[list[dict[str, Any]], str | None]:
        ids = sorted(i for i, d in self.journeys.items() if d.get("kind", "journey") == kind)
        start = ids.index(token) + 1 if token in ids else 0
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        return [copy.deepcopy(self.journeys[i]) for i in page], (page[-1] if more and page else None)

    def active_journeys(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(d) for d in self.journeys.values() if d["status"] == "active"]

    def create_path(self, path: dict[str, Any]) -> bool:
        key = (path["customer_id"], path["key"])
        if key in self.paths:
            return False
        self.paths[key] = copy.deepcopy(path)
        return True

    def get_path(self, customer_id: str, key: str) -> dict[str, Any] | None:
        found = self.paths.get((customer_id, key))
        return copy.deepcopy(found) if found else None

    def save_path(self, path: dict[str, Any], expected_seq: int) -> None:
        key = (path["customer_id"], path["key"])
        current = self.paths.get(key)
        if current is None or current["seq"] != expected_seq:
            raise ConflictError(str(key))
        self.paths[key] = copy.deepcopy(path)

    def customer_paths(self, customer_id: str, journey_id: str | None = None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(p)
            for (c, _), p in sorted(self.paths.items())
            if c == customer_id and (journey_id is None or p["journey_id"] == journey_id)
        ]

    def due_paths(self, now_iso: str, limit: int) -> list[dict[str, Any]]:
        now = parse_ts(now_iso)
        due = [p for p in self.paths.values() if p.get("wake_at") and parse_ts(p["wake_at"]) <= now]
        return [copy.deepcopy(p) for p in sorted(due, key=lambda p: p["wake_at"])[:limit]]

    def journey_paths(self, journey_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.paths.values() if p["journey_id"] == journey_id]

    def erase_customer(self, customer_id: str) -> int:
        keys = [k for k in self.paths if k[0] == customer_id]
        for k in keys:
            del self.paths[k]
        return len(keys)

    def get_scan(self, journey_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.scans.get(journey_id))

    def put_scan(self, journey_id: str, state: dict[str, Any]) -> None:
        self.scans[journey_id] = copy.deepcopy(state)

    def put_intent(self, doc: dict[str, Any]) -> None:
        self.intents[doc["name"]] = copy.deepcopy(doc)

    def list_intents(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.intents[n]) for n in sorted(self.intents)]


class RecordingTaskSink(TaskSink):
    """Tasks as published, in order."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict[str, Any]]] = []

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.tasks.append((detail_type, copy.deepcopy(detail)))


class InMemoryProductCatalogue(ProductCatalogue):
    def __init__(self) -> None:
        self.products: dict[str, dict[str, Any]] = {}

    def put_product(self, doc: dict[str, Any]) -> None:
        self.products[doc["product_id"]] = copy.deepcopy(doc)

    def get_products(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {p: copy.deepcopy(self.products[p]) for p in set(product_ids) if p in self.products}


class InMemoryInsightStore(InsightStore):
    """Insight documents in a dict keyed by (kind, key)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, kind: str, key: str, doc: dict[str, Any], expires_at: int | None = None) -> None:
        self.docs[(kind, key)] = copy.deepcopy(doc)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        doc = self.docs.get((kind, key))
        return copy.deepcopy(doc) if doc is not None else None

    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        hits = sorted((k, d) for (kd, k), d in self.docs.items() if kd == kind and k.startswith(prefix))
        return [(k, copy.deepcopy(d)) for k, d in hits]


class InMemoryPolicyStore(PolicyStore):
    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self.doc = copy.deepcopy(doc)

    def get_policy(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.doc)

    def put_policy(self, doc: dict[str, Any]) -> None:
        self.doc = copy.deepcopy(doc)


class InMemoryPromoPools(PromoPools):
    """Promo code pools in dicts, behind one lock: a take is atomic, as the adapter's transaction is."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: dict[str, list[str]] = defaultdict(list)
        self.taken: dict[str, dict[str, str]] = defaultdict(dict)  # pool -> code -> holder
        self.holders: dict[str, dict[str, str]] = defaultdict(dict)  # pool -> holder -> code
        self.low_water: dict[str, int] = {}

    def add_codes(self, pool: str, codes: Iterable[str], low_water: int | None, now: datetime) -> PromoCodesAdded:
        with self.lock:
            codes = list(dict.fromkeys(codes))
            new = [c for c in codes if c not in self.free[pool] and c not in self.taken[pool]]
            self.free[pool] += new
            self.low_water[pool] = low_water if low_water is not None else self.low_water.get(pool, 0)
            view = self._view(pool)
        return PromoCodesAdded(**view.model_dump(), added=len(new), already_present=len(codes) - len(new))

    def take(self, pool: str, holder: str, now: datetime) -> TakenCode | None:
        with self.lock:
            if holder in self.holders[pool]:
                return TakenCode(code=self.holders[pool][holder], fresh=False)
            if not self.free[pool]:
                return None
            code = self.free[pool].pop(0)
            self.taken[pool][code] = holder
            self.holders[pool][holder] = code
            return TakenCode(code=code, fresh=True, counts=self._view(pool))

    def counts(self, pool: str) -> PromoPoolView:
        with self.lock:
            if pool not in self.low_water:
                raise NotFoundError(f"promo pool '{pool}' not found")
            return self._view(pool)

    def _view(self, pool: str) -> PromoPoolView:
        return PromoPoolView(
            pool=pool, available=len(self.free[pool]), taken=len(self.taken[pool]), low_water=self.low_water[pool]
        )
