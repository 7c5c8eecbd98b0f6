"""Customer histories and their aggregates at chosen times, built with the ingest API's fold.

``Folder.advance(t)`` folds, for every customer, the events with ``timestamp < t`` not folded yet,
in time order, with ``kairos.customers.aggregates.fold_events`` and the counted-moment set carried across
calls: exactly what the ingest API stores after receiving those events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from kairos.core.constants import ENGAGEMENT_TYPES, HOURS_PER_WEEK
from kairos.core.timeutil import HOUR
from kairos.customers.aggregates import CustomerAggregates, fold_events, zone_of_offsets
from kairos.models.features import local_hours_of_week, segment_of
from training import progress
from training.columns import TYPE_CODE, US, EventTable, FoldEvent, table_from_events, to_us

PROGRESS_CUSTOMERS = 500  # customers folded between two looks at the progress meter
ENGAGEMENT_CODES = np.array(sorted(TYPE_CODE[t] for t in ENGAGEMENT_TYPES), dtype=np.int8)
PURCHASE_CODE = TYPE_CODE["purchase"]

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kairos.customers.schemas import Event
    from training.io import Profile


class CustomerView:
    """One customer's history as tools and tests read it (the events are made on demand)."""

    def __init__(self, table: EventTable, index: int) -> None:
        self._table = table
        self.index = index

    @property
    def events(self) -> list[FoldEvent]:
        return self._table.fold_events(self.index)

    def __len__(self) -> int:
        lo, hi = self._table.rows(self.index)
        return hi - lo


def _segments(owner: np.ndarray, n: int) -> np.ndarray:
    """Row offsets of ``n`` groups from the sorted group index of each row."""
    return np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n)))).astype(np.int64)


class History:
    """All customers' events (as columns, :class:`training.columns.EventTable`), with their profiles.

    Memory is the table's (about 40 bytes an event) plus each customer's engagement moments and purchases
    as numpy arrays; no per-event Python object is kept.
    """

    def __init__(self, events: Sequence[Event] | EventTable, profiles: dict[str, Profile] | None = None) -> None:
        self.profiles = profiles or {}
        table = events if isinstance(events, EventTable) else table_from_events(events)
        self.table = table
        n = len(table.customer_ids)
        self.customers: dict[str, CustomerView] = {
            cid: CustomerView(table, i) for i, cid in enumerate(table.customer_ids)
        }
        self._index = {cid: i for i, cid in enumerate(table.customer_ids)}
        owner = np.repeat(np.arange(n), np.diff(table.offsets))
        hours = table.ts_us // (US * HOUR)
        # Engagement moments: distinct clock hours with an engagement, per customer (rows are in time order);
        # an event naming a message is its answer, not a moment (kairos.customers.aggregates.makes_moment).
        eng = np.isin(table.type, ENGAGEMENT_CODES) & (table.message < 0)
        h, o = hours[eng], owner[eng]
        first = np.ones(h.size, dtype=bool)
        first[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
        self._moments = h[first].astype(np.int64)
        # The UTC offset each moment's first event carried: the evidence ingestion infers a zone from.
        self._moment_offset = table.offset_min[eng][first].astype(np.int64)
        self._moment_offsets = _segments(o[first], n)
        # Purchases of a product, per customer, in time order.
        bought = (table.type == PURCHASE_CODE) & (table.product >= 0)
        self._purchase_s = table.ts_us[bought] / US
        self._purchase_product = table.product[bought]
        self._purchase_offsets = _segments(owner[bought], n)
        self._product_hours: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self.start = datetime.fromtimestamp(int(table.ts_us.min()) / US, UTC) if len(table) else None
        self.end = datetime.fromtimestamp(int(table.ts_us.max()) / US, UTC) if len(table) else None

    def _moments_of(self, cid: str) -> np.ndarray:
        i = self._index[cid]
        return self._moments[self._moment_offsets[i] : self._moment_offsets[i + 1]]

    def _purchases_of(self, cid: str) -> tuple[np.ndarray, np.ndarray]:
        i = self._index[cid]
        lo, hi = self._purchase_offsets[i], self._purchase_offsets[i + 1]
        return self._purchase_s[lo:hi], self._purchase_product[lo:hi]

    def message_events(self) -> list[FoldEvent]:
        """The events that name a message (opens, clicks, purchases from a message): the message log's labels."""
        out = []
        rows = np.flatnonzero(self.table.message >= 0)
        for i in np.unique(np.searchsorted(self.table.offsets, rows, side="right") - 1).tolist():
            out += [e for e in self.table.fold_events(i) if e.message_id]
        return out

    def timezone(self, cid: str, until: datetime | None = None) -> str:
        """The zone a customer's local hours are in: their profile's, else the one ingestion infers from the
        UTC offsets of their engagement moments before ``until`` (all of them when ``None``); UTC without any.

        Labels, test moments and the item table use it, so a customer without a profile zone is placed where
        their features (counted at each event's own offset) and the served hour place them.
        """
        profile = self.profiles.get(cid)
        if profile and profile.timezone:
            return profile.timezone
        i = self._index.get(cid)
        if i is None:
            return "UTC"
        lo, hi = int(self._moment_offsets[i]), int(self._moment_offsets[i + 1])
        if until is not None:
            hi = lo + int(np.searchsorted(self._moments[lo:hi], until.timestamp() / HOUR, side="left"))
        moments, seen = self._moments[lo:hi], self._moment_offset[lo:hi]
        offsets, counts = np.unique(seen, return_counts=True)
        spans = {o: [int(moments[seen == o].min()), int(moments[seen == o].max())] for o in offsets.tolist()}
        return zone_of_offsets(dict(zip(offsets.tolist(), counts.tolist(), strict=True)), "UTC", spans)

    def empty_aggregates(self, cid: str) -> CustomerAggregates:
        """A customer's aggregates before any event, as ingestion starts them: in the profile's zone if one
        was given, else inferring it from the offsets their events carry."""
        profile = self.profiles.get(cid)
        if profile and profile.timezone:
            return CustomerAggregates(timezone=profile.timezone, timezone_source="profile")
        return CustomerAggregates()

    def attributes(self, cid: str) -> dict:
        profile = self.profiles.get(cid)
        return profile.attributes if profile else {}

    def segment(self, cid: str) -> str | None:
        return segment_of(self.attributes(cid))

    def window_moments(self, cid: str, start: datetime, end: datetime) -> np.ndarray:
        """Engagement moments (epoch hours) with ``start <= t < end``."""
        m = self._moments_of(cid)
        lo = np.searchsorted(m, start.timestamp() / HOUR, side="left")
        hi = np.searchsorted(m, end.timestamp() / HOUR, side="left")
        return m[lo:hi]

    def window_how_counts(self, cids: Sequence[str], start: datetime, end: datetime) -> np.ndarray:
        """(len(cids), 168) counts of each customer's engagement moments in the window, local hour of week."""
        out = np.zeros((len(cids), HOURS_PER_WEEK))
        for i, cid in enumerate(cids):
            m = self.window_moments(cid, start, end)
            if m.size:
                np.add.at(out[i], local_hours_of_week(m, self.timezone(cid, end)), 1.0)
        return out

    def window_products(self, cid: str, start: datetime, end: datetime) -> list[str]:
        """Distinct products the customer bought with ``start <= t < end``, in first-purchase order."""
        times, products = self._purchases_of(cid)
        lo = int(np.searchsorted(times, start.timestamp(), side="left"))
        hi = int(np.searchsorted(times, end.timestamp(), side="left"))
        names = self.table.product_ids
        return list(dict.fromkeys(names[p] for p in products[lo:hi].tolist()))

    def active(self, start: datetime, end: datetime) -> list[str]:
        """Customers with at least one engagement moment in the window."""
        return [cid for cid in self.customers if self.window_moments(cid, start, end).size]

    def product_hour_counts(self, end: datetime) -> dict[str, np.ndarray]:
        """Per product, its purchase moments before ``end`` by the buyer's local hour of day."""
        if self._product_hours is None:
            self._product_hours = self._index_product_hours()
        ids, times, codes = self._product_hours
        sel = times < end.timestamp() / HOUR
        counts = np.bincount(codes[sel], minlength=len(ids) * 24).reshape(len(ids), 24)
        return {p: counts[i].astype(np.float64) for i, p in enumerate(ids) if counts[i].any()}

    def _index_product_hours(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        # One entry per (customer, product, clock hour): a product bought twice in an hour is one moment.
        names = self.table.product_ids
        used = np.unique(self._purchase_product)
        ids = sorted(names[p] for p in used.tolist())
        index = {p: i for i, p in enumerate(ids)}
        remap = np.full(len(names), -1, dtype=np.int64)
        for p in used.tolist():
            remap[p] = index[names[p]]
        times, codes = [], []
        for cid in self.customers:
            purchase_s, products = self._purchases_of(cid)
            if not products.size:
                continue
            hours = (purchase_s // HOUR).astype(np.int64)
            hods = local_hours_of_week(hours, self.timezone(cid)) % 24
            prod = remap[products]
            key = np.unique(np.stack([prod, hours]), axis=1, return_index=True)[1]
            times.append(hours[key])
            codes.append(prod[key] * 24 + hods[key])
        if not times:
            return ids, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return ids, np.concatenate(times), np.concatenate(codes)

    def baskets(self, end: datetime) -> list[list[str]]:
        """Purchase baskets before ``end``: a customer's products bought in one clock hour."""
        out = []
        end_s = end.timestamp()
        names = self.table.product_ids
        for cid in self.customers:
            purchase_s, codes = self._purchases_of(cid)
            hi = int(np.searchsorted(purchase_s, end_s, side="left"))
            if hi == 0:
                continue
            hours = (purchase_s[:hi] // HOUR).astype(np.int64)
            cuts = np.flatnonzero(np.diff(hours)) + 1
            products = [names[p] for p in codes[:hi].tolist()]
            bounds = [0, *cuts.tolist(), hi]
            out.extend(products[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        return out


class Folder:
    """Aggregates of every customer, advanced in time with ``fold_events``."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.aggs: dict[str, CustomerAggregates] = {cid: history.empty_aggregates(cid) for cid in history.customers}
        self._counted: dict[str, set[str]] = {cid: set() for cid in history.customers}
        self._pos: dict[str, int] = {cid: history.table.rows(i)[0] for cid, i in history._index.items()}
        self.at: datetime | None = None

    def advance(self, until: datetime) -> dict[str, CustomerAggregates]:
        """Fold every event with ``timestamp < until``; returns the aggregates (do not mutate them)."""
        if self.at is not None and until < self.at:
            raise ValueError("Folder only moves forward in time")
        until_us = to_us(until)
        table = self.history.table
        meter = progress.Meter(f"folding history to {until:%Y-%m-%d}", len(self.history._index), "customers")
        for n, (cid, i) in enumerate(self.history._index.items(), 1):
            if n % PROGRESS_CUSTOMERS == 0:
                meter.update(n)
            pos = self._pos[cid]
            end = table.rows(i)[1]
            hi = pos + int(np.searchsorted(table.ts_us[pos:end], until_us, side="left"))
            if hi > pos:
                agg, new = fold_events(self.aggs[cid], table.fold_events(i, pos, hi), self._counted[cid])
                self.aggs[cid] = agg
                self._counted[cid] |= new
                self._pos[cid] = hi
        meter.update(len(self.history._index))
        self.at = until
        return self.aggs
