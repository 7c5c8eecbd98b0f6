"""Ingest a batch of events: validate one by one, store each valid event once, fold it into its customer once.

A batch is never all or nothing: an invalid event is rejected by its index, and a customer whose write the store
refuses for good has its events rejected by index too, while the other customers' events are stored. Only a
transient store failure (throttling, a 5xx, conflicts that kept coming) fails the request, which the client may
then retry whole: what was stored comes back as duplicates.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kairos.core.errors import ConflictError, InvalidInputError, KairosError, StoreError
from kairos.core.observability import logger
from kairos.core.timeutil import epoch_hour, parse_ts
from kairos.customers.aggregates import fold_events, makes_moment, moment_key, rebucket
from kairos.customers.domain import CustomerRecord, CustomerWrite
from kairos.customers.loyalty_domain import screen as screen_points
from kairos.customers.schemas import Event, IngestResult, Rejection, check_event_time, first_error

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from kairos.customers.ports import CustomerStore

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
    if makes_moment(ev.type, ev.message_id):
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
    raw_events: list[Any],
    store: CustomerStore,
    now: datetime,
    retention: timedelta,
    skew: timedelta,
    on_stored: Callable[[list[Event]], None] | None = None,
    message_known: Callable[[str], bool] | None = None,
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
    on_stored
        Told each group of events once it is stored, never a duplicate.
    message_known
        Whether a message id is in the message log: asked only for an erased customer's events that name a
        message, which are refused when it is not (the message went with the erasure).

    Returns
    -------
    IngestResult
        Counts of accepted and duplicate events, and the rejections with index, field and reason, in index
        order: invalid events, and the events of a customer whose write the store refused for good.

    Raises
    ------
    StoreError
        The store failed transiently (throttling, a 5xx, conflicts after ``MAX_ATTEMPTS`` tries). Every other
        customer's events were written first; what was committed stays committed, so a client retry of the
        whole batch is safe (those events come back as duplicates).

    Example
    -------
    >>> ingest_events([{"event_id": "e1", "customer_id": "c1", "type": "session",
    ...                 "timestamp": "2026-03-02T10:00:00+00:00"}], store, now, retention, skew)
    IngestResult(accepted=1, duplicates=0, rejected=[])
    """
    valid, rejected = validate_events(raw_events, now, retention, skew)
    duplicates = 0
    pending: dict[str, list[Event]] = defaultdict(list)
    index: dict[tuple[str, str], int] = {}
    unique: list[tuple[int, Event]] = []
    for i, ev in valid:  # the first occurrence of an event id in the batch wins, as it would across batches
        key = (ev.customer_id, ev.event_id)
        if key in index:
            duplicates += 1
            continue
        index[key] = i
        unique.append((i, ev))
    # Time order makes the stored "recent" lists and the moment counts independent of arrival order.
    for _, ev in sorted(unique, key=lambda p: (p[1].timestamp, p[0])):
        pending[ev.customer_id].append(ev)

    accepted = 0
    attempt = 0
    transient: StoreError | None = None
    while pending:
        attempt += 1
        if attempt > MAX_ATTEMPTS:
            raise StoreError("could not commit events after repeated conflicts")
        state = store.load_ingest_state(
            pending,
            [(c, e.event_id) for c, evs in pending.items() for e in evs],
            [(c, m) for c, evs in pending.items() for e in evs for m in _moments_of(e)],
            {c: {e.type for e in evs} for c, evs in pending.items()},
        )
        rounds: list[list[CustomerWrite]] = []
        for cid in sorted(pending):
            unstored = [e for e in pending[cid] if (cid, e.event_id) in state.folded_events]
            fresh = [
                e
                for e in pending[cid]
                if (cid, e.event_id) not in state.existing_events and (cid, e.event_id) not in state.folded_events
            ]
            # Events an earlier request folded are duplicates; those it did not finish storing are stored now.
            duplicates += len(pending[cid]) - len(fresh)
            pending[cid] = fresh
            if unstored:
                record = state.customers[cid]
                write = CustomerWrite(record, [], [], record.aggregates, unstored=unstored)
                if not rounds:
                    rounds.append([])
                rounds[0].append(write)
                continue  # the fresh events go on the next attempt, on top of what this write stores
            if not fresh:
                continue
            record = state.customers[cid]
            if record.erased_at:
                # What happened before an erasure stays forgotten, whoever sends it again (a retry, a backfill).
                erased = parse_ts(record.erased_at)
                rejected += [
                    Rejection(
                        index=index[(cid, e.event_id)],
                        field="customer_id",
                        reason=f"the customer was erased at {record.erased_at}; earlier events are not accepted",
                    )
                    for e in fresh
                    if e.timestamp <= erased
                ]
                fresh = [e for e in fresh if e.timestamp > erased]
                if message_known is not None:
                    # A message sent before the erasure went with it: engagement naming one (a late open, a
                    # replayed click) would bring back what was erased.
                    stale = [e for e in fresh if e.message_id and not message_known(e.message_id)]
                    rejected += [
                        Rejection(
                            index=index[(cid, e.event_id)],
                            field="message_id",
                            reason=f"names a message sent before the customer was erased at {record.erased_at}",
                        )
                        for e in stale
                    ]
                    fresh = [e for e in fresh if e not in stale]
                pending[cid] = fresh
                if not fresh:
                    continue
            fresh, refused = screen_points(fresh, record.aggregates)
            if refused:
                # The ledger never goes negative: a spend of points the customer does not hold is refused.
                rejected += [Rejection(index=index[(cid, e.event_id)], field=f, reason=r) for e, f, r in refused]
                pending[cid] = fresh
                if not fresh:
                    continue
            counted = {m for (c, m) in state.existing_moments if c == cid}
            agg = record.aggregates
            zone_given = (record.profile or {}).get("timezone")
            if zone_given and agg.timezone_source != "profile" and not agg.has_data:
                # The profile came first: count in its zone from the first event (nothing to re-bucket).
                agg = rebucket(agg, [], zone_given)
            budget = store.max_transaction_items - store.extra_items_per_customer + 1
            for r, piece in enumerate(_units(fresh, budget)):
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
        failed: set[str] = set()  # customers whose later pieces must wait (their earlier piece did not commit)
        for writes in rounds:
            writes = [w for w in writes if w.record.customer_id not in failed]
            for txn in _pack(writes, store.max_transaction_items, store.write_items):
                for w, error in _commit(store, txn, now):
                    cid = w.record.customer_id
                    if error is None:
                        accepted += len(w.events)
                        if on_stored is not None:
                            on_stored(list(w.events))
                        done = {e.event_id for e in w.events}
                        pending[cid] = [e for e in pending.get(cid, []) if e.event_id not in done]
                        continue
                    failed.add(cid)
                    if isinstance(error, ConflictError):
                        logger.info("ingest transaction conflicted", extra={"customer_id": cid, "attempt": attempt})
                        continue  # reloaded and tried again in the next attempt
                    if isinstance(error, InvalidInputError):
                        logger.warning(
                            "store refused a customer's events", extra={"customer_id": cid, "error": str(error)}
                        )
                        reason = f"could not be stored: {error.reason}"
                        rejected += [
                            Rejection(index=index[(cid, e.event_id)], field=error.field, reason=reason)
                            for e in pending.get(cid, [])
                        ]
                    else:
                        transient = error
                    pending[cid] = []
        pending = {c: evs for c, evs in pending.items() if evs}
        if pending:
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    if transient is not None:
        raise transient
    return IngestResult(accepted=accepted, duplicates=duplicates, rejected=sorted(rejected, key=lambda r: r.index))


def _commit(
    store: CustomerStore, txn: list[CustomerWrite], now: datetime
) -> list[tuple[CustomerWrite, KairosError | None]]:
    """Commit a group of writes; each write with ``None`` or the error that stopped it."""
    return list(zip(txn, store.commit_writes(txn, now), strict=True))


def _pack(writes: list[CustomerWrite], budget: int, size: Callable[[CustomerWrite], int]) -> list[list[CustomerWrite]]:
    """First-fit packing of customer writes into transactions of at most ``budget`` items (``size`` per write)."""
    txns: list[list[CustomerWrite]] = []
    sizes: list[int] = []
    for w, n in sorted(((w, size(w)) for w in writes), key=lambda p: -p[1]):
        for i, used in enumerate(sizes):
            if used + n <= budget:
                txns[i].append(w)
                sizes[i] += n
                break
        else:
            txns.append([w])
            sizes.append(n)
    return txns
