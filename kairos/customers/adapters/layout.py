"""How one customer is laid out in DynamoDB, so that an event rewrites a small item, not the whole customer.

DynamoDB bills a write by the size of the whole item written (1 WCU per KB, twice inside a transaction), so a
customer kept as one item grows the price of every event with its history. A customer is split instead:

- the customers-table item holds the *core*: the version, the times, the send counters, the names of the parts
  stored, and one compressed attribute ``core`` with the aggregates every event touches (counts, the hour-of-week
  histogram, the recent moments, subscriptions) and the moments counted but not yet written to a month marker.
  It stays under a kilobyte whatever the history;
- the events table (key ``customer_id`` + ``sk``) holds the other parts, each written only when it changed:
  ``a#profile`` (the profile as given), ``a#rec`` (the latest recommendation), ``a#recent`` (recently seen
  products: product events), ``a#bought`` (products bought) and ``a#days`` (purchase days and recent orders:
  purchases), and month markers ``n#YYYY-MM`` with the hours already counted as moments (number sets ``m`` for
  engagement, ``p`` for purchase).

Counted moments are kept on the core until :data:`FLUSH_AT` of them gather; they then go to their months' markers
in the same transaction, a few markers per flush, so a new moment costs nothing extra most of the time.

Parts are zlib-compressed JSON in a binary attribute: a thousand events of history compress to about half a
kilobyte of core and under a kilobyte per part.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kairos.core.constants import PRODUCT_TYPES
from kairos.core.timeutil import HOUR
from kairos.customers.aggregates import CustomerAggregates

PART_PREFIX = "a#"
MONTH_PREFIX = "n#"
PROFILE = "profile"
RECOMMENDATION = "rec"
# Aggregate fields kept apart from the core: each only changes with product events or purchases.
AGGREGATE_PARTS: dict[str, tuple[str, ...]] = {
    "recent": ("recent_products",),
    "bought": ("product_purchases",),
    "days": ("purchase_days", "orders"),
}
PART_FIELDS = frozenset(f for fs in AGGREGATE_PARTS.values() for f in fs)
ALL_PARTS = (PROFILE, RECOMMENDATION, *AGGREGATE_PARTS)
# Counted moments kept on the core before they go to month markers, and how many stay after a flush.
FLUSH_AT = 48
KEEP_AFTER_FLUSH = 16
# Retention is at most about 14 months: a flush touches at most this many month markers.
MAX_MONTHS = 15


def part_sk(name: str) -> str:
    return f"{PART_PREFIX}{name}"


def month_sk(month: str) -> str:
    return f"{MONTH_PREFIX}{month}"


def pack(doc: Any) -> bytes:
    return zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), 9)


def unpack(blob: Any) -> Any:
    raw = blob.value if hasattr(blob, "value") else blob  # boto3's Binary or bytes
    return json.loads(zlib.decompress(bytes(raw)))


def _deltas(values: list[int]) -> list[int]:
    return [values[0], *(b - a for a, b in zip(values, values[1:], strict=False))] if values else []


def _undeltas(values: list[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        out.append(v + out[-1] if out else v)
    return out


def _moment_lists(keys: list[str]) -> dict[str, list[int]]:
    by_kind: dict[str, list[int]] = {"m": [], "p": []}
    for k in keys:
        kind, h = k.split("#", 1)
        by_kind[kind].append(int(h))
    return {kind: _deltas(sorted(hs)) for kind, hs in by_kind.items()}


@dataclass
class Core:
    """What the core holds besides the aggregates: the bookkeeping of exactly-once counting."""

    # counted moment keys (``m#<hour>``, ``p#<hour>``) not yet in month markers
    unflushed: list[str] = field(default_factory=list)
    # the latest hour any month marker holds (``None``: no marker was written, none needs reading)
    flushed_max: int | None = None
    # [event id, unix seconds] of events folded into the aggregates whose items were not yet seen stored
    journal: list[list[Any]] = field(default_factory=list)


def encode_core(agg: CustomerAggregates, core: Core) -> bytes:
    """The core aggregates and their bookkeeping, compressed."""
    doc = {k: v for k, v in agg.to_dict().items() if k not in PART_FIELDS}
    doc["recent_moments"] = _deltas(doc["recent_moments"])  # sorted hours: small steps compress well
    doc["unflushed"] = _moment_lists(core.unflushed)
    doc["flushed_max"] = core.flushed_max
    doc["journal"] = core.journal
    return pack(doc)


def decode_core(blob: Any) -> tuple[dict[str, Any], Core]:
    """The core's aggregate fields (as stored, before typing) and its bookkeeping."""
    doc = unpack(blob)
    doc["recent_moments"] = _undeltas(doc.get("recent_moments", []))
    unflushed = [f"{kind}#{h}" for kind, hs in (doc.pop("unflushed", None) or {}).items() for h in _undeltas(hs)]
    return doc, Core(sorted(unflushed), doc.pop("flushed_max", None), doc.pop("journal", None) or [])


def parts_touched(event_types: set[str]) -> set[str]:
    """The aggregate parts a fold of events of these types may change (``kairos.customers.aggregates``)."""
    out = set()
    if event_types & PRODUCT_TYPES:
        out.add("recent")
    if "purchase" in event_types:
        out |= {"recent", "bought", "days"}
    return out


def encode_part(agg: CustomerAggregates, name: str) -> bytes:
    return pack({f: getattr(agg, f) for f in AGGREGATE_PARTS[name]})


def join(core: dict[str, Any] | None, parts: dict[str, Any]) -> CustomerAggregates:
    """The whole aggregates from the core's fields and the decoded aggregate parts."""
    if core is None:
        return CustomerAggregates()
    doc = dict(core)
    for name in AGGREGATE_PARTS:
        doc.update(parts.get(name) or {})
    return CustomerAggregates.from_dict(doc)


def changed_parts(before: CustomerAggregates, after: CustomerAggregates) -> list[str]:
    """The aggregate parts whose fields differ."""
    return [name for name, fs in AGGREGATE_PARTS.items() if any(getattr(before, f) != getattr(after, f) for f in fs)]


def month_of(epoch_h: int) -> str:
    return datetime.fromtimestamp(epoch_h * HOUR, UTC).strftime("%Y-%m")


def month_end_hour(month: str) -> int:
    """The first UTC epoch hour after the month."""
    year, mon = (int(x) for x in month.split("-"))
    nxt = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return int(nxt.timestamp()) // HOUR


def flush(unflushed: list[str]) -> tuple[list[str], dict[str, dict[str, list[int]]]]:
    """What stays on the core, and the moments that go to month markers (``month -> kind -> hours``).

    Nothing moves until more than :data:`FLUSH_AT` moments gather; then all but the newest
    :data:`KEEP_AFTER_FLUSH` go, so one flush serves many moments.
    """
    if len(unflushed) <= FLUSH_AT:
        return unflushed, {}
    ordered = sorted(unflushed, key=lambda k: (int(k.split("#", 1)[1]), k))
    keep, move = ordered[-KEEP_AFTER_FLUSH:], ordered[:-KEEP_AFTER_FLUSH]
    months: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"m": [], "p": []})
    for k in move:
        kind, h = k.split("#", 1)
        months[month_of(int(h))][kind].append(int(h))
    if len(months) > MAX_MONTHS:  # only with moments older than retention: keep the newest months' worth
        for month in sorted(months)[: len(months) - MAX_MONTHS]:
            keep += [f"{kind}#{h}" for kind, hs in months.pop(month).items() for h in hs]
    return sorted(keep), dict(months)
