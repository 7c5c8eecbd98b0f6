"""Ingest a batch of events: validate one by one, store each valid event once, fold it into its customer once."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kairos.aggregates import fold_events, moment_key
from kairos.constants import ENGAGEMENT_TYPES
from kairos.domain.customers import CustomerRecord, CustomerWrite
from kairos.errors import ConflictError, StoreError
from kairos.observability import logger
from kairos.schemas import Event, IngestResult, Rejection, check_event_time, first_error
from kairos.timeutil import epoch_hour

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from kairos.ports import CustomerStore

MAX_ATTEMPTS = 8


def validate_events(
    raw_events: list[Any], now: datetime, retention: timedelta, skew: timedelta
) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """Split a raw batch into valid events (with their index) and rejections naming index, field and reason."""
    valid: list[tuple[int, Event]] = []
    rejected: list[Rejection] = []
    for i, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            rejected.append(Rejection(index=i, field="(event)", reason="an event must be a JSON object"))
            continue
        try:
            ev = Event.model_validate(raw)
        except ValidationError as exc:
            field, reason = first_error(exc)
            rejected.append(Rejection(index=i, field=field, reason=reason))
            continue
        why = check_event_time(ev.timestamp, now, retention, skew)
        if why:
            rejected.append(Rejection(index=i, field="timestamp", reason=why))
            continue
        valid.append((i, ev))
    return valid, rejected


def _moments_of(ev: Event) -> list[str]:
    h = epoch_hour(ev.timestamp)
    keys = []
    if ev.type in ENGAGEMENT_TYPES:
        keys.append(moment_key("m", h))
    if ev.type == "purchase":
        keys.append(moment_key("p", h))
    return keys


def _units(events: list[Event], budget: int) -> list[list[Event]]:
    """Split one customer's new events into pieces that fit a transaction with their moments and the customer."""
    pieces: list[list[Event]] = [[]]
    used = 1
    for ev in events:
        cost = 1 + len(_moments_of(ev))
        if used + cost > budget and pieces[-1]:
            pieces.append([])
            used = 1
        pieces[-1].append(ev)
        used += cost
    return pieces


def ingest_events(
    raw_events: list[Any], store: CustomerStore, now: datetime, retention: timedelta, skew: timedelta
) -> IngestResult:
    """Validate and store a batch; every valid event is stored and counted exactly once.

    Parameters
    ----------
    raw_events
        The decoded ``events`` array of the request.
    store
        Where events and customers live.
    now
        Server time, for the clock-skew and retention checks.
    retention, skew
        How old and how far ahead of ``now`` an event may be.

    Returns
    -------
    IngestResult
        Counts of accepted and duplicate events, and the rejections with index, field and reason.

    Raises
    ------
    StoreError
        The store failed for good; events committed before the failure stay committed (a client retry
        of the whole batch is safe: they come back as duplicates).
    """
    valid, rejected = validate_events(raw_events, now, retention, skew)
    duplicates = 0
    pending: dict[str, list[Event]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    unique: list[tuple[int, Event]] = []
    for i, ev in valid:  # the first occurrence of an event id in the batch wins, as it would across batches
        key = (ev.customer_id, ev.event_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        unique.append((i, ev))
    # Time order makes the stored "recent" lists and the moment counts independent of arrival order.
    for _, ev in sorted(unique, key=lambda p: (p[1].timestamp, p[0])):
        pending[ev.customer_id].append(ev)

    accepted = 0
    attempt = 0
    while pending:
        attempt += 1
        if attempt > MAX_ATTEMPTS:
            raise StoreError("could not commit events after repeated conflicts")
        state = store.load_ingest_state(
            pending,
            [(c, e.event_id) for c, evs in pending.items() for e in evs],
            [(c, m) for c, evs in pending.items() for e in evs for m in _moments_of(e)],
        )
        rounds: list[list[CustomerWrite]] = []
        for cid in sorted(pending):
            fresh = [e for e in pending[cid] if (cid, e.event_id) not in state.existing_events]
            duplicates += len(pending[cid]) - len(fresh)
            pending[cid] = fresh
            if not fresh:
                continue
            record = state.customers[cid]
            counted = {m for (c, m) in state.existing_moments if c == cid}
            agg = record.aggregates
            for r, piece in enumerate(_units(fresh, store.max_transaction_items)):
                agg, new_moments = fold_events(agg, piece, counted)
                counted |= new_moments
                write = CustomerWrite(record=record, events=piece, moments=sorted(new_moments), aggregates=agg)
                while len(rounds) <= r:
                    rounds.append([])
                rounds[r].append(write)
                # The next piece of this customer goes on top of the version this one writes.
                record = CustomerRecord(
                    customer_id=cid,
                    version=record.version + 1,
                    exists=True,
                    aggregates=agg,
                    profile=record.profile,
                )
        pending = {c: evs for c, evs in pending.items() if evs}
        failed: set[str] = set()
        for writes in rounds:
            writes = [w for w in writes if w.record.customer_id not in failed]
            for txn in _pack(writes, store.max_transaction_items):
                try:
                    store.commit_ingest(txn, now)
                except ConflictError:
                    failed |= {w.record.customer_id for w in txn}
                    logger.info("ingest transaction conflicted", extra={"customers": len(txn), "attempt": attempt})
                    continue
                for w in txn:
                    accepted += len(w.events)
                    done = {e.event_id for e in w.events}
                    pending[w.record.customer_id] = [e for e in pending[w.record.customer_id] if e.event_id not in done]
        pending = {c: evs for c, evs in pending.items() if evs}
        if pending:
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    return IngestResult(accepted=accepted, duplicates=duplicates, rejected=rejected)


def _pack(writes: list[CustomerWrite], budget: int) -> list[list[CustomerWrite]]:
    """First-fit packing of customer writes into transactions of at most ``budget`` items."""
    txns: list[list[CustomerWrite]] = []
    sizes: list[int] = []
    for w in sorted(writes, key=lambda w: -w.size):
        for i, used in enumerate(sizes):
            if used + w.size <= budget:
                txns[i].append(w)
                sizes[i] += w.size
                break
        else:
            txns.append([w])
            sizes.append(w.size)
    return txns
