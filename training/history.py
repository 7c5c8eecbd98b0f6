"""Customer histories and their aggregates at chosen times, built with the ingest API's fold.

``Folder.advance(t)`` folds, for every customer, the events with ``timestamp < t`` not folded yet,
in time order, with ``kairos.aggregates.fold_events`` and the counted-moment set carried across
calls: exactly what the ingest API stores after receiving those events.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from kairos.aggregates import CustomerAggregates, fold_events
from kairos.constants import ENGAGEMENT_TYPES, HOURS_PER_WEEK
from kairos.features import local_hours_of_week, segment_of
from kairos.timeutil import HOUR

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kairos.schemas import Event
    from training.io import Profile


@dataclass
class CustomerHistory:
    events: list[Event]
    times: list[float]  # unix seconds, sorted, aligned with events
    moments: np.ndarray  # engagement moments: sorted unique UTC epoch hours
    purchase_s: np.ndarray  # unix seconds of purchase events with a product, sorted
    purchase_products: list[str]  # aligned with purchase_s


class History:
    """All customers' events, sorted, with their profiles."""

    def __init__(self, events: Sequence[Event], profiles: dict[str, Profile] | None = None) -> None:
        self.profiles = profiles or {}
        grouped: dict[str, list[Event]] = {}
        for ev in events:
            grouped.setdefault(ev.customer_id, []).append(ev)
        self.customers: dict[str, CustomerHistory] = {}
        for cid in sorted(grouped):
            evs = grouped[cid]
            evs.sort(key=lambda e: (e.timestamp.timestamp(), e.event_id))
            times = [e.timestamp.timestamp() for e in evs]
            moments = np.unique(
                np.array([int(t) // HOUR for t, e in zip(times, evs, strict=True) if e.type in ENGAGEMENT_TYPES])
            ).astype(np.int64)
            bought = [
                (t, e.product_id) for t, e in zip(times, evs, strict=True) if e.type == "purchase" and e.product_id
            ]
            self.customers[cid] = CustomerHistory(
                events=evs,
                times=times,
                moments=moments,
                purchase_s=np.array([t for t, _ in bought], dtype=np.float64),
                purchase_products=[p for _, p in bought],
            )
        self._product_hours: tuple[list[str], np.ndarray, np.ndarray] | None = None
        all_times = [h.times[0] for h in self.customers.values() if h.times]
        last_times = [h.times[-1] for h in self.customers.values() if h.times]
        self.start = datetime.fromtimestamp(min(all_times), UTC) if all_times else None
        self.end = datetime.fromtimestamp(max(last_times), UTC) if last_times else None

    def timezone(self, cid: str) -> str:
        profile = self.profiles.get(cid)
        return profile.timezone if profile and profile.timezone else "UTC"

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
        m = self.customers[cid].moments
        lo = np.searchsorted(m, start.timestamp() / HOUR, side="left")
        hi = np.searchsorted(m, end.timestamp() / HOUR, side="left")
        return m[lo:hi]

    def window_how_counts(self, cids: Sequence[str], start: datetime, end: datetime) -> np.ndarray:
        """(len(cids), 168) counts of each customer's engagement moments in the window, local hour of week."""
        out = np.zeros((len(cids), HOURS_PER_WEEK))
        for i, cid in enumerate(cids):
            m = self.window_moments(cid, start, end)
            if m.size:
                np.add.at(out[i], local_hours_of_week(m, self.timezone(cid)), 1.0)
        return out

    def window_products(self, cid: str, start: datetime, end: datetime) -> list[str]:
        """Distinct products the customer bought with ``start <= t < end``, in first-purchase order."""
        h = self.customers[cid]
        lo = int(np.searchsorted(h.purchase_s, start.timestamp(), side="left"))
        hi = int(np.searchsorted(h.purchase_s, end.timestamp(), side="left"))
        return list(dict.fromkeys(h.purchase_products[lo:hi]))

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
        ids = sorted({p for h in self.customers.values() for p in h.purchase_products})
        index = {p: i for i, p in enumerate(ids)}
        times, codes = [], []
        for cid, h in self.customers.items():
            if not h.purchase_products:
                continue
            hours = (h.purchase_s // HOUR).astype(np.int64)
            hods = local_hours_of_week(hours, self.timezone(cid)) % 24
            prod = np.array([index[p] for p in h.purchase_products], dtype=np.int64)
            key = np.unique(np.stack([prod, hours]), axis=1, return_index=True)[1]
            times.append(hours[key])
            codes.append(prod[key] * 24 + hods[key])
        return ids, np.concatenate(times), np.concatenate(codes)

    def baskets(self, end: datetime) -> list[list[str]]:
        """Purchase baskets before ``end``: a customer's products bought in one clock hour."""
        out = []
        end_s = end.timestamp()
        for h in self.customers.values():
            hi = int(np.searchsorted(h.purchase_s, end_s, side="left"))
            if hi == 0:
                continue
            hours = (h.purchase_s[:hi] // HOUR).astype(np.int64)
            cuts = np.flatnonzero(np.diff(hours)) + 1
            products = h.purchase_products[:hi]
            bounds = [0, *cuts.tolist(), hi]
            out.extend(products[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        return out


class Folder:
    """Aggregates of every customer, advanced in time with ``fold_events``."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.aggs: dict[str, CustomerAggregates] = {cid: history.empty_aggregates(cid) for cid in history.customers}
        self._counted: dict[str, set[str]] = {cid: set() for cid in history.customers}
        self._pos: dict[str, int] = dict.fromkeys(history.customers, 0)
        self.at: datetime | None = None

    def advance(self, until: datetime) -> dict[str, CustomerAggregates]:
        """Fold every event with ``timestamp < until``; returns the aggregates (do not mutate them)."""
        if self.at is not None and until < self.at:
            raise ValueError("Folder only moves forward in time")
        until_s = until.timestamp()
        for cid, h in self.history.customers.items():
            pos = self._pos[cid]
            hi = bisect.bisect_left(h.times, until_s, lo=pos)
            if hi > pos:
                agg, new = fold_events(self.aggs[cid], h.events[pos:hi], self._counted[cid])
                self.aggs[cid] = agg
                self._counted[cid] |= new
                self._pos[cid] = hi
        self.at = until
        return self.aggs
