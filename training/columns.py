"""Events as columns: what training holds in memory instead of one Python object per event.

An :class:`EventTable` keeps, per event, only what the fold and the labels read (customer, time, UTC offset,
type, channel, product, quantity, amount, message) in numpy arrays: about 40 bytes an event, against some
2 KB for a validated ``Event`` object. Rows are grouped by customer and sorted by time, so a customer's events
are one slice; :meth:`EventTable.fold_events` turns a slice into short-lived light events for
``kairos.customers.aggregates.fold_events`` (the one fold the ingest API runs), which keeps the features of training and
serving the same.

:class:`TableBuilder` fills a table from any source without keeping per-event objects: Arrow tables (JSON
Lines and Parquet, validated in bulk with ``pyarrow.compute``), and records made by our own adapters.
Duplicates (the same ``event_id`` of the same customer) are dropped, the first kept, as the ingest API would.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.core.constants import CHANNELS, EVENT_TYPE_PATTERN, EVENT_TYPES
from kairos.customers.schemas import _ID_PATTERN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import pyarrow as pa

TYPE_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
CHANNEL_CODE = {c: i for i, c in enumerate(CHANNELS)}
US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZONES: dict[int, timezone] = {}
# An ISO 8601 time with a UTC offset, as the API accepts it.
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
COLUMNS = ("customer_id", "event_id", "type", "timestamp", "channel", "product_id", "quantity", "amount", "message_id")


def _zone(offset_min: int) -> timezone:
    tz = _ZONES.get(offset_min)
    if tz is None:
        tz = _ZONES[offset_min] = UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))
    return tz


class FoldEvent:
    """One event as the fold and the labels read it, made from a table row and thrown away after use."""

    __slots__ = ("amount", "channel", "customer_id", "message_id", "product_id", "quantity", "timestamp", "type")

    def __init__(
        self,
        customer_id: str,
        timestamp: datetime,
        type_: str,
        channel: str | None,
        product_id: str | None,
        quantity: int | None,
        amount: float | None,
        message_id: str | None,
    ) -> None:
        self.customer_id = customer_id
        self.timestamp = timestamp
        self.type = type_
        self.channel = channel
        self.product_id = product_id
        self.quantity = quantity
        self.amount = amount
        self.message_id = message_id


@dataclass
class EventTable:
    """Events grouped by customer (``offsets``) and sorted by time within each customer."""

    customer_ids: list[str]
    offsets: np.ndarray  # int64, len(customer_ids) + 1
    ts_us: np.ndarray  # int64 microseconds since the epoch (UTC)
    offset_min: np.ndarray  # int16: the UTC offset the event's timestamp carried, minutes
    type: np.ndarray  # int8: index into EVENT_TYPES
    channel: np.ndarray  # int8: index into CHANNELS, -1 none
    product: np.ndarray  # int32: index into product_ids, -1 none
    quantity: np.ndarray  # int32, 0 none
    amount: np.ndarray  # float64, NaN none
    message: np.ndarray  # int32: index into message_ids, -1 none
    product_ids: list[str]
    message_ids: list[str]

    def __len__(self) -> int:
        return int(self.ts_us.size)

    @property
    def nbytes(self) -> int:
        arrays = (self.offsets, self.ts_us, self.offset_min, self.type, self.channel, self.product, self.quantity)
        return sum(a.nbytes for a in (*arrays, self.amount, self.message))

    def rows(self, i: int) -> tuple[int, int]:
        return int(self.offsets[i]), int(self.offsets[i + 1])

    def fold_events(self, i: int, lo: int | None = None, hi: int | None = None) -> list[FoldEvent]:
        """Customer ``i``'s events in rows ``[lo, hi)`` (default: all of theirs), as light objects."""
        start, end = self.rows(i)
        lo = start if lo is None else lo
        hi = end if hi is None else hi
        cid = self.customer_ids[i]
        out = []
        ts, off, typ, ch = self.ts_us[lo:hi], self.offset_min[lo:hi], self.type[lo:hi], self.channel[lo:hi]
        prod, qty, amt, msg = self.product[lo:hi], self.quantity[lo:hi], self.amount[lo:hi], self.message[lo:hi]
        for k in range(hi - lo):
            tz = _zone(int(off[k]))
            out.append(
                FoldEvent(
                    cid,
                    (EPOCH + timedelta(microseconds=int(ts[k]))).astimezone(tz),
                    EVENT_TYPES[int(typ[k])],
                    CHANNELS[int(ch[k])] if ch[k] >= 0 else None,
                    self.product_ids[int(prod[k])] if prod[k] >= 0 else None,
                    int(qty[k]) or None,
                    None if np.isnan(amt[k]) else float(amt[k]),
                    self.message_ids[int(msg[k])] if msg[k] >= 0 else None,
                )
            )
        return out

    def all_events(self) -> Iterator[FoldEvent]:
        for i in range(len(self.customer_ids)):
            yield from self.fold_events(i)


def _event_key(customer_id: str, event_id: str) -> int:
    digest = hashlib.blake2b(f"{customer_id}\x1f{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class TableBuilder:
    """Collects events column by column; :meth:`finish` dedupes, groups and sorts them into an EventTable."""

    def __init__(self, keep: Callable[[str], bool] | None = None) -> None:
        self._keep = keep  # customers to keep (a shard's); None: everybody
        self._kept: dict[str, bool] = {}
        self._cust = array("i")
        self._key = array("q")
        self._ts = array("q")
        self._off = array("h")
        self._type = array("b")
        self._channel = array("b")
        self._product = array("i")
        self._qty = array("i")
        self._amount = array("d")
        self._message = array("i")
        self._cust_code: dict[str, int] = {}
        self._product_code: dict[str, int] = {}
        self._message_code: dict[str, int] = {}
        self.rejected = 0
        self.custom = 0

    def __len__(self) -> int:
        return len(self._ts)

    def _code(self, table: dict[str, int], value: str | None) -> int:
        if value is None:
            return -1
        code = table.get(value)
        if code is None:
            code = table[value] = len(table)
        return code

    def add(
        self,
        customer_id: str,
        event_id: str,
        type_: str,
        timestamp: datetime,
        channel: str | None = None,
        product_id: str | None = None,
        quantity: int | None = None,
        amount: float | None = None,
        message_id: str | None = None,
    ) -> None:
        """Add one event whose fields are already valid (our adapters' records, validated ``Event`` objects)."""
        if type_ not in TYPE_CODE:
            self.custom += 1  # a shop's own type: valid, kept in the archive, not a feature of any model
            return
        if self._keep is not None:
            kept = self._kept.get(customer_id)
            if kept is None:
                kept = self._kept[customer_id] = self._keep(customer_id)
            if not kept:
                return
        offset = timestamp.utcoffset()
        self._cust.append(self._code(self._cust_code, customer_id))
        self._key.append(_event_key(customer_id, event_id))
        self._ts.append(to_us(timestamp))
        self._off.append(int(offset.total_seconds() // 60) if offset is not None else 0)
        self._type.append(TYPE_CODE[type_])
        self._channel.append(CHANNEL_CODE[channel] if channel else -1)
        self._product.append(self._code(self._product_code, product_id))
        self._qty.append(int(quantity or 0))
        self._amount.append(float(amount) if amount is not None else float("nan"))
        self._message.append(self._code(self._message_code, message_id))

    def add_event(self, ev: Any) -> None:
        """Add a validated ``Event`` (or a light event of a table, which has no ``event_id``: one is made)."""
        self.add(
            ev.customer_id,
            getattr(ev, "event_id", "") or f"#{len(self)}",
            ev.type,
            ev.timestamp,
            ev.channel,
            ev.product_id,
            ev.quantity,
            None if ev.amount is None else float(ev.amount),
            getattr(ev, "message_id", None),
        )

    def add_arrow(self, table: pa.Table) -> int:
        """Add a table of event records (JSON Lines or Parquet), validated in bulk; returns the rows accepted.

        A row is rejected when a field training reads breaks the API's rules: ids (present, at most 128 of
        ``A-Z a-z 0-9 . _ : @ + -``), ``type``, ``timestamp`` (ISO 8601 with a UTC offset), ``channel``,
        ``quantity`` (an integer within a million either way), ``amount`` (within a billion either way).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows
        if n == 0:
            return 0
        cols = {name: _string_column(table, name, n) for name in COLUMNS if name not in ("quantity", "amount")}
        ok = pa.array(np.ones(n, dtype=bool))
        for name in ("customer_id", "event_id"):
            ok = pc.and_kleene(ok, pc.fill_null(pc.match_substring_regex(cols[name], _ID_PATTERN), False))
        for name in ("product_id", "message_id"):
            valid = pc.match_substring_regex(cols[name], _ID_PATTERN)
            ok = pc.and_kleene(ok, pc.fill_null(valid, True))
        # A shop's own event types are valid records; add() leaves them out (the models read the built-in ones).
        ok = pc.and_kleene(ok, pc.fill_null(pc.match_substring_regex(cols["type"], EVENT_TYPE_PATTERN), False))
        channel_ok = pc.or_kleene(pc.is_null(cols["channel"]), pc.is_in(cols["channel"], value_set=pa.array(CHANNELS)))
        ok = pc.and_kleene(ok, channel_ok)
        ok = pc.and_kleene(ok, pc.fill_null(pc.match_substring_regex(cols["timestamp"], _TS_PATTERN), False))
        quantity, q_ok = _numeric(table, "quantity", n, integer=True)
        amount, a_ok = _numeric(table, "amount", n, integer=False)
        mask = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool) & q_ok & a_ok
        self.rejected += int(n - mask.sum())
        if not mask.any():
            return 0
        keep = np.flatnonzero(mask)
        ts_str = cols["timestamp"].take(pa.array(keep)).to_pylist()
        stamps = [_parse_iso(s) for s in ts_str]
        accepted = 0
        columns = {k: cols[k].take(pa.array(keep)).to_pylist() for k in cols if k != "timestamp"}
        for j, row in enumerate(keep.tolist()):
            if stamps[j] is None:
                self.rejected += 1
                continue
            self.add(
                columns["customer_id"][j],
                columns["event_id"][j],
                columns["type"][j],
                stamps[j],
                columns["channel"][j],
                columns["product_id"][j],
                None if np.isnan(quantity[row]) else int(quantity[row]),
                None if np.isnan(amount[row]) else float(amount[row]),
                columns["message_id"][j],
            )
            accepted += 1
        return accepted

    def finish(self) -> EventTable:
        """Drop duplicate ``(customer, event_id)`` (the first kept), group by customer, sort each by time."""
        cust = np.frombuffer(self._cust, dtype=np.int32).astype(np.int64) if len(self) else np.zeros(0, np.int64)
        key = np.frombuffer(self._key, dtype=np.int64) if len(self) else np.zeros(0, np.int64)
        ts = np.frombuffer(self._ts, dtype=np.int64) if len(self) else np.zeros(0, np.int64)
        n = ts.size
        order = np.lexsort((np.arange(n), key, cust))  # by customer, then event key, first arrival first
        dup = np.zeros(n, dtype=bool)
        if n > 1:
            same = (cust[order][1:] == cust[order][:-1]) & (key[order][1:] == key[order][:-1])
            dup[order[1:][same]] = True
        keep = np.flatnonzero(~dup)
        # Customers by id, so tables built in any order are the same; events by time, then event key.
        names = sorted(self._cust_code, key=self._cust_code.__getitem__)
        rank = np.empty(len(names), dtype=np.int64)
        for r, i in enumerate(sorted(range(len(names)), key=names.__getitem__)):
            rank[i] = r
        ranked = rank[cust[keep]] if keep.size else np.zeros(0, np.int64)
        order = keep[np.lexsort((key[keep], ts[keep], ranked))]
        counts = np.bincount(rank[cust[order]], minlength=len(names)) if order.size else np.zeros(len(names), int)

        def col(buf: array, dtype: Any) -> np.ndarray:
            arr = np.frombuffer(buf, dtype=dtype) if len(buf) else np.zeros(0, dtype=dtype)
            return arr[order].copy()

        products = sorted(self._product_code, key=self._product_code.__getitem__)
        messages = sorted(self._message_code, key=self._message_code.__getitem__)
        return EventTable(
            customer_ids=sorted(names),
            offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
            ts_us=ts[order].copy(),
            offset_min=col(self._off, np.int16),
            type=col(self._type, np.int8),
            channel=col(self._channel, np.int8),
            product=col(self._product, np.int32),
            quantity=col(self._qty, np.int32),
            amount=col(self._amount, np.float64),
            message=col(self._message, np.int32),
            product_ids=products,
            message_ids=messages,
        )


def table_from_events(events: Iterable[Any]) -> EventTable:
    """An EventTable of ``Event`` (or light) objects."""
    builder = TableBuilder()
    for ev in events:
        builder.add_event(ev)
    return builder.finish()


def to_us(ts: datetime) -> int:
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _parse_iso(value: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


def _string_column(table: pa.Table, name: str, n: int) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        return pa.nulls(n, pa.string())
    col = table.column(name).combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.cast(pa.string())
    if pa.types.is_timestamp(col.type):
        # A reader that parsed the times has dropped their offsets: keep them as UTC.
        return pc.strftime(col, format="%Y-%m-%dT%H:%M:%S+00:00")
    return pa.nulls(n, pa.string())  # a number where a string belongs: fails validation below


def _numeric(table: pa.Table, name: str, n: int, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 (NaN when absent) and which rows are valid for the field."""
    import pyarrow as pa

    if name not in table.column_names:
        return np.full(n, np.nan), np.ones(n, dtype=bool)
    col = table.column(name).combine_chunks()
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
        values = np.full(n, np.nan)
        return values, np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    null = np.isnan(values)
    limit = 1_000_000 if integer else 1_000_000_000
    with np.errstate(invalid="ignore"):
        ok = null | (np.isfinite(values) & (np.abs(values) <= limit))
        if integer:
            ok &= null | (values == np.round(values))
    return values, ok


__all__ = ["EventTable", "FoldEvent", "TableBuilder", "table_from_events"]
