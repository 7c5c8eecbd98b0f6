"""Let customers into journeys: on an event, a segment change, a date in their profile, or a schedule (a
campaign is a journey with a scheduled entry for an audience); wake waiting paths; start due steps.

An entry runs the path's first nodes at once as far as they have no side effect (a best-hour delay is
decided here), so a path that waits holds no execution until its time comes. One customer's entry is
:mod:`kairos.journeys.entrance`; segment membership and its moves, :mod:`kairos.journeys.membership`.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.audiences.matching import matches
from kairos.core.errors import ConflictError
from kairos.core.observability import logger
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.journeys.domain import NEXT_PURCHASE_ATTRIBUTE, WaitFor
from kairos.journeys.entrance import Entrance, enter, trigger_of
from kairos.journeys.membership import PROFILE_ITEM, on_profile_change, segment_check
from kairos.journeys.paths import ENGAGEMENT, MEMBER, WAITING_STATUS, event_matches, save_path, step_name, step_payload

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.audiences.domain import Filter
    from kairos.audiences.matching import CustomerHistory
    from kairos.customers.domain import CustomerRecord
    from kairos.journeys.domain import Journey
    from kairos.journeys.ports import JourneyStarter, JourneyStore


def on_events(
    events: list[dict[str, Any]], journeys: list[Journey], entrance: Entrance, now: datetime
) -> dict[str, int]:
    """Entries and early wake-ups for a batch of accepted events (the events table's stream, in order).

    Each event may start paths (journeys whose entry it matches, or whose segment it moved the customer into or
    out of) and wakes the customer's waiting paths at once when the event is one they wait for or one that
    ends them, instead of at their timeout.
    """
    store, starter = entrance.store, entrance.starter
    counts = {"entered": 0, "control": 0, "skipped": 0, "already_entered": 0, "woken": 0}
    active = [j for j in journeys if j.is_active]
    by_event = [j for j in active if j.definition.entry.kind == "event"]
    by_segment = [j for j in active if j.definition.entry.kind == "segment"]
    waking = waking_types(active)
    for event in events:
        cid = event["customer_id"]
        matching = [
            j for j in by_event if event_matches(event, j.definition.entry.event or "", j.definition.entry.where)
        ]
        if matching or by_segment:
            record = entrance.customers.get_customer(cid)
            if record is None or record.erased:
                continue
            for journey in matching:
                out = enter(journey, cid, f"e-{event['event_id']}", trigger_of(event), record, entrance, now)
                counts[out.outcome] += 1
            for journey in by_segment:
                seg = segment_check(journey, record, entrance, now, f"s-{event['event_id']}", trigger_of(event))
                if seg is not None:
                    counts[seg.outcome] += 1
        if event.get("type") in waking:
            counts["woken"] += wake_paths(cid, event, store, starter, now)
    return counts


def _occurrences(raw: Any, yearly: bool, now: datetime) -> list[datetime]:
    """The dates an attribute names (midnight UTC for a bare date); with ``yearly`` its anniversaries around now."""
    if not isinstance(raw, str):
        return []
    try:
        value = parse_ts(raw if "T" in raw else f"{raw[:10]}T00:00:00+00:00")
    except ValueError:
        return []
    if value is None:
        return []
    if value.utcoffset() is None:
        value = value.replace(tzinfo=now.tzinfo)
    if not yearly:
        return [value]
    out = []
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            out.append(value.replace(year=year))
        except ValueError:  # 29 February in a year without it
            out.append(value.replace(year=year, day=28))
    return out


def _run_of(entry: Any, now: datetime) -> datetime | None:
    """The scheduled run due at ``now`` (the latest at or before it), or ``None`` before the first."""
    sched = entry.schedule
    if now < sched.at:
        return None
    if not sched.every_hours:
        return sched.at
    period = timedelta(hours=sched.every_hours)
    return sched.at + period * int((now - sched.at) / period)


ENTRY_COUNTS = ("entered", "control", "skipped", "already_entered", "scanned", "matched")
RESERVE_MS = 10_000  # a shard stops taking pages when its invocation has less time left than this


def scan_entries(
    journeys: list[Journey],
    entrance: Entrance,
    now: datetime,
    time_left_ms: Callable[[], int] = lambda: 10**9,
    page_size: int = 500,
    shards: int = 1,
    workers: int = 1,
) -> dict[str, int]:
    """Date-attribute, scheduled and segment entries: scan the customers for each journey whose run is due.

    A date journey runs every hour (a customer enters once per date: its entry id is the date), a scheduled
    one (a campaign) at each of its runs, for the members of its segment and filters. A segment journey is
    scanned once when it is activated or changed: those in its segment then enter (as they would on their next
    event), and every customer whose membership time alone may change gets a marker that wakes when it does.

    The scan is paced and resumable. A run's customers are split into ``shards`` (a parallel scan), scanned by
    up to ``workers`` threads at once (each a page at a time: the work waits on the store, so threads overlap
    it); after every page the shard's cursor and the run's counts are saved, and a shard stops when the
    invocation has less than :data:`RESERVE_MS` left. The next tick resumes every shard where it stopped; an
    entry seen twice is one entry (the path is created conditionally), so a page done twice changes nothing.
    """
    counts = dict.fromkeys(ENTRY_COUNTS, 0)
    for journey in journeys:
        entry = journey.definition.entry
        if not journey.is_active or entry.kind not in ("date", "schedule", "segment"):
            continue
        if entry.kind == "segment":  # once per activation or change of the journey: who is in the segment now
            run = parse_ts(journey.updated_at)
        elif entry.kind == "date":
            run = now.replace(minute=0, second=0, microsecond=0)
        else:
            run = _run_of(entry, now)
        if run is None:
            continue
        filters: list[Filter] = list(entry.filters)
        if entry.segment:
            saved = entrance.segment_filters(entry.segment) if entrance.segment_filters else None
            if saved is None:
                continue
            filters = [*filters, *saved]
        scan = _Scan(journey, run, filters, entrance, now, time_left_ms, page_size, shards)
        if scan.done():
            continue
        todo = scan.open_shards()
        if workers <= 1 or len(todo) <= 1:
            for shard in todo:
                scan.shard(shard)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="entry") as pool:
                for future in [pool.submit(scan.shard, shard) for shard in todo]:
                    future.result()  # a shard's error fails the tick; its saved cursor resumes it next time
        for k, v in scan.added.items():
            counts[k] += v
    return counts


class _Scan:
    """One run of one journey's entry scan, shared by the threads that scan its shards."""

    def __init__(
        self,
        journey: Journey,
        run: datetime,
        filters: list[Filter],
        entrance: Entrance,
        now: datetime,
        time_left_ms: Callable[[], int],
        page_size: int,
        shards: int,
    ) -> None:
        self.journey, self.run, self.filters, self.entrance, self.now = journey, run, filters, entrance, now
        self.time_left_ms, self.page_size = time_left_ms, page_size
        self.lock = threading.Lock()
        self.added = dict.fromkeys(ENTRY_COUNTS, 0)
        state = entrance.store.get_scan(journey.journey_id) or {}
        if state.get("run") == utc_iso(run):
            self.state = state
        else:  # a new run: its shard count is fixed now, so a resumed run keeps its shards
            self.state = {"run": utc_iso(run), "shards": shards, "cursors": {}, "finished": [], "done": False}
        self.state.setdefault("counts", dict.fromkeys(ENTRY_COUNTS, 0))
        self.total = int(self.state.get("shards") or 1)

    def done(self) -> bool:
        return bool(self.state.get("done"))

    def open_shards(self) -> list[int]:
        return [k for k in range(self.total) if k not in set(self.state.get("finished") or [])]

    def shard(self, shard: int) -> None:
        """Scan one shard a page at a time while the invocation has time left, saving after every page."""
        entry = self.journey.definition.entry
        history = self.entrance.history
        reader = history(self.filters) if history is not None and entry.kind in ("schedule", "segment") else None
        cursor = (self.state.get("cursors") or {}).get(str(shard))
        while True:
            records, cursor = self.entrance.customers.scan_customers(shard, self.total, cursor, self.page_size)
            page = dict.fromkeys(ENTRY_COUNTS, 0)
            for rec in records:
                page["scanned"] += 1
                if entry.kind == "segment":
                    # Marks who is in the segment and when time may change it; those in it enter now.
                    occasion, trigger = f"a-{self.run:%Y%m%dT%H%M%S}", {"type": "activation", "at": utc_iso(self.run)}
                    seg = segment_check(self.journey, rec, self.entrance, self.now, occasion, trigger, reader)
                    if seg is not None:
                        page[seg.outcome] += 1
                        page["matched"] += 1
                    continue
                occasion_trigger = self.occasion(rec, reader)
                if occasion_trigger is None:
                    continue
                occasion, trigger = occasion_trigger
                out = enter(self.journey, rec.customer_id, occasion, trigger, rec, self.entrance, self.now)
                page[out.outcome] += 1
                page["matched"] += 1
            self.save(shard, cursor, page)
            if cursor is None or self.time_left_ms() < RESERVE_MS:
                return

    def occasion(self, rec: CustomerRecord, reader: CustomerHistory | None) -> tuple[str, dict[str, Any]] | None:
        """Why the customer enters on this run (occasion, trigger), or ``None`` when they do not."""
        entry, now, run = self.journey.definition.entry, self.now, self.run
        if entry.kind == "schedule":
            if not matches(rec, self.filters, now, reader):
                return None
            return f"r-{run:%Y%m%dT%H%M}", {"type": "schedule", "run": utc_iso(run)}
        if entry.date_attribute == NEXT_PURCHASE_ATTRIBUTE:
            # One date per consumable product (the latest scoring run's lifecycle answer); the day's first product
            # by id is the one the message names (``event.product_id``, ``event.lines``).
            dates = ((rec.recommendation or {}).get("lifecycle") or {}).get("next_purchase_at") or {}
            dated = [(d, str(pid)) for pid, raw in sorted(dates.items()) for d in _occurrences(raw, False, now)]
        else:
            attrs = (rec.profile or {}).get("attributes") or {}
            dated = [(d, "") for d in _occurrences(attrs.get(entry.date_attribute or ""), entry.yearly, now)]
        due = sorted(
            (d, pid)
            for d, pid in dated
            if d - timedelta(days=entry.days_before) <= now < d - timedelta(days=entry.days_before - 1)
        )
        if not due:
            return None
        (day, product_id), *_ = due
        trigger = {"type": "date", "attribute": entry.date_attribute, "date": utc_iso(day)}
        return f"d-{day:%Y%m%d}", {**trigger, "product_id": product_id} if product_id else trigger

    def save(self, shard: int, cursor: str | None, page: dict[str, int]) -> None:
        with self.lock:
            state = self.state
            for k, v in page.items():
                state["counts"][k] = int(state["counts"].get(k, 0)) + v
                self.added[k] += v
            if cursor is None:
                state["finished"] = sorted({*(state.get("finished") or []), shard})
                state.get("cursors", {}).pop(str(shard), None)
            else:
                state.setdefault("cursors", {})[str(shard)] = cursor
            state["done"] = len(state["finished"]) >= self.total
            state["updated_at"] = utc_iso(self.now)
            self.entrance.store.put_scan(self.journey.journey_id, state)


def waking_types(journeys: list[Journey]) -> set[str]:
    """Event types that may move a waiting path: engagement, exit criteria, what wait nodes wait for."""
    types: set[str] = set(ENGAGEMENT)
    for j in journeys:
        types |= set(j.definition.exit_on)
        types |= {n.event for n in j.definition.nodes.values() if isinstance(n, WaitFor)}
    return types


def wake_paths(
    customer_id: str, event: dict[str, Any], store: JourneyStore, starter: JourneyStarter, now: datetime
) -> int:
    """Make the customer's waiting paths due now (their step decides whether the event matters)."""
    woken = 0
    for path in store.customer_paths(customer_id):
        if path.get("status") != WAITING_STATUS or not path.get("wake_at"):
            continue
        if parse_ts(path["wake_at"]) <= now:
            starter.start(step_name(path), step_payload(path))  # due already: make sure its step runs
            continue
        path["wake_at"] = utc_iso(now)
        try:
            save_path(path, store, now)
        except ConflictError:
            continue  # a step is moving it right now and will see the event
        starter.start(step_name(path), step_payload(path))
        woken += 1
    return woken


def start_due(
    store: JourneyStore,
    starter: JourneyStarter,
    now: datetime,
    limit: int = 1000,
    workers: int = 1,
    recheck: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> int:
    """The timer: start the step of every waiting path whose time has come (a start made before is refused), and
    hand the segment membership markers that are due to ``recheck`` (:func:`recheck_members`). Returns how many
    steps were started.

    With ``workers`` > 1 the starts overlap (each waits on Step Functions), so a best hour shared by many
    customers is started at the rate the ``StartExecution`` quota allows rather than one call at a time.
    """
    found = store.due_paths(utc_iso(now), limit)
    markers = [p for p in found if p.get("entry_id") == MEMBER]
    if markers:
        if recheck is None:
            raise ValueError("membership markers are due: the timer must recheck them")
        recheck(markers)
    due = [p for p in found if p.get("status") == WAITING_STATUS and p.get("entry_id") != MEMBER]

    def start(path: dict[str, Any]) -> bool:
        return starter.start(step_name(path), step_payload(path))

    if workers <= 1 or len(due) <= 1:
        started = sum(1 for p in due if start(p))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="due") as pool:
            started = sum(1 for ok in pool.map(start, due) if ok)
    return started


def on_stream(
    records: list[dict[str, Any]], journeys: list[Journey], entrance: Entrance, now: datetime
) -> dict[str, Any]:
    """The trigger path: the events table's stream records (inserted events and profile changes, in order) ->
    entries and wake-ups.

    Returns the counts and ``batchItemFailures``: on the first record that fails, the stream is told to resume
    from it (what came before is done, and doing it again changes nothing: entries and starts are idempotent).
    """
    counts: dict[str, Any] = {"events": 0, "profile_changes": 0}
    for rec in records:
        ddb = rec.get("dynamodb", {})
        keys = ddb.get("Keys", {})
        sk = keys.get("sk", {}).get("S", "")
        profile = sk == PROFILE_ITEM and rec.get("eventName") in ("INSERT", "MODIFY")
        if not profile and (rec.get("eventName") != "INSERT" or not sk.startswith("e#")):
            continue
        cid = keys.get("customer_id", {}).get("S", "")
        try:
            if profile:
                out = on_profile_change(cid, ddb.get("SequenceNumber", ""), journeys, entrance, now)
            else:
                out = on_events([json.loads(ddb["NewImage"]["record"]["S"])], journeys, entrance, now)
        except Exception:  # noqa: BLE001 - reported to the stream, which retries from this record
            logger.exception("journey trigger failed", extra={"customer_id": cid})
            counts["batchItemFailures"] = [{"itemIdentifier": ddb.get("SequenceNumber", "")}]
            return counts
        counts["profile_changes" if profile else "events"] += 1
        for k, v in out.items():
            counts[k] = counts.get(k, 0) + v
    counts["batchItemFailures"] = []
    return counts
