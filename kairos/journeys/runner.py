"""Move a path: run its nodes from where it is until one waits or the path ends (one step).

Each move is one short step (one Step Functions execution running :func:`advance`), started when the
customer enters, when the timer finds ``wake_at`` has come, or at once when the customer does something the
path waits for. A message's id is fixed by the path, node and visit, so a step that is retried after a crash
sends nothing twice; a step that failed after a provider accepted its message is recovered
(:func:`recover`): the message is settled ``unconfirmed`` and the path goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.audiences.domain import Filter
from kairos.audiences.matching import compare, field_value, matches, matches_filter
from kairos.core.constants import PROMO_REDEEMED
from kairos.core.errors import ConflictError, NotFoundError
from kairos.core.timeutil import parse_ts, utc_iso, zone
from kairos.journeys.definitions import segment_filters
from kairos.journeys.delays import delay_end
from kairos.journeys.domain import (
    Cycle,
    Delay,
    Exit,
    Journey,
    Message,
    RandomSplit,
    SetAttribute,
    Split,
    Task,
    WaitFor,
)
from kairos.journeys.graph import MIN_LOOP_HOURS
from kairos.journeys.paths import (
    ENGAGEMENT,
    WAITING_STATUS,
    event_matches,
    event_value,
    fail_path,
    finish,
    message_prefix,
    park,
)
from kairos.journeys.variants import node_content
from kairos.messaging.consent import may_send
from kairos.messaging.domain import DELIVERED, IN_FLIGHT, SendRequest
from kairos.messaging.policy import DEFAULT_POLICY, SendPolicy, quiet_window
from kairos.messaging.send import Content, deliver, settle_unconfirmed
from kairos.models.timing import QuietHours, stable_unit

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.audiences.ports import SegmentStore
    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore, TaskSink
    from kairos.messaging.ports import MessageLog, Provider

MAX_NODES_PER_STEP = 50  # a step that would run more nodes than this has a loop the validation missed


@dataclass
class StepDeps:
    """What a step reads and writes."""

    customers: CustomerStore
    journeys: JourneyStore
    segments: SegmentStore
    messages: MessageLog
    providers: dict[str, Provider]
    tasks: TaskSink
    population: Callable[[], dict[str, Any] | None] | None = None
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None
    policy: Callable[[], SendPolicy] = lambda: DEFAULT_POLICY
    # (pool, holder) -> the holder's code of the pool, taken once (None when the pool has none left)
    promo: Callable[[str, str], str | None] | None = None
    # customer_id, topic -> the signed one-click unsubscribe and preference page URLs
    links: Callable[[str, str], dict[str, str]] | None = None


class _Due(Exception):  # noqa: N818 - an entry's first run stops before a node with side effects
    pass


class _Wait(Exception):  # noqa: N818 - control flow inside a step, never leaves this module
    def __init__(self, until: datetime) -> None:
        self.until = until


class _End(Exception):  # noqa: N818
    def __init__(self, reason: str) -> None:
        self.reason = reason


def advance(customer_id: str, key: str, seq: int, deps: StepDeps, now: datetime) -> dict[str, Any]:
    """Run one step of a path; returns ``{"status", "node", "wake_at"?, "reason"?}``.

    A step whose ``seq`` is no longer the path's (another step moved it, or it was started twice) changes
    nothing. Raises what the providers and stores raise transiently, for the state machine to retry.
    """
    path = deps.journeys.get_path(customer_id, key)
    if path is None:
        return {"status": "gone", "node": None}
    if path["seq"] != seq or path.get("status") != WAITING_STATUS:
        return {"status": "stale", "node": path.get("node")}
    try:
        doc = deps.journeys.get_journey(path["journey_id"], path["version"])
    except NotFoundError:
        return finish(path, deps.journeys, now, "done", "journey deleted")
    current = deps.journeys.get_journey(path["journey_id"])
    # The path's version runs; a promoted content variant is the current document's, so it holds for every path.
    journey = Journey.from_doc({**doc, "promoted": current.get("promoted") or {}})
    if current["status"] == "archived":
        return finish(path, deps.journeys, now, "done", "journey archived")
    if current["status"] == "paused":
        # A paused journey holds its paths where they are and looks again in an hour.
        return park(path, deps.journeys, now, now + timedelta(hours=1))
    record = deps.customers.get_customer(customer_id)
    if record is None or record.erased:
        return finish(path, deps.journeys, now, "done", "customer gone")
    runner = _Runner(journey, path, record, deps, now)
    try:
        runner.run()
    except _Wait as wait:
        return park(path, deps.journeys, now, wait.until)
    except _End as end:
        return finish(path, deps.journeys, now, "done", end.reason)
    raise AssertionError("a step ends by waiting or ending")  # pragma: no cover


def first_nodes(journey: Journey, path: dict[str, Any], record: CustomerRecord, deps: StepDeps, now: datetime) -> None:
    """Run a new path's first nodes in place, as far as they have no side effect (no message, task or
    attribute): a delay's best hour is decided at entry, so the path waits without an execution. Leaves
    ``path`` waiting (``wake_at``) or ended (``status`` ``done``)."""
    runner = _Runner(journey, path, record, deps, now, dry=True)
    try:
        runner.run()
    except _Due:
        path["wake_at"] = utc_iso(now)
    except _Wait as wait:
        path["wake_at"] = utc_iso(max(wait.until, now))
    except _End as end:
        path.pop("wake_at", None)
        path.update(status="done", exit_reason=end.reason, ended_at=utc_iso(now))


def recover(customer_id: str, key: str, error: str, deps: StepDeps, now: datetime, attempts: int = 3) -> dict[str, Any]:
    """After a step failed every retry: settle what it may have sent and move the path on, else fail it.

    The failed step may have died after a provider accepted a message (a timeout, a store write, any error the
    state machine does not retry). Its claims still ``sending`` are settled ``unconfirmed`` (counted by caps and
    results, archived for training, never sent again), and the step runs again: what was sent is found in the
    log, so the path goes on to its next node and its follow-up goes out once. When the step fails again the
    path becomes ``failed`` with the error.
    """
    last = error
    for _ in range(attempts):
        path = deps.journeys.get_path(customer_id, key)
        if path is None or path.get("status") != WAITING_STATUS:
            return {"status": "gone" if path is None else str(path.get("status")), "recovered": False}
        settle_in_flight(customer_id, message_prefix(path), deps.messages, now, last)
        try:
            result = advance(customer_id, key, int(path["seq"]), deps, now)
        except Exception as exc:  # noqa: BLE001 - the step's error is recorded on the path below
            last = f"{type(exc).__name__}: {exc}"
            continue
        return {**result, "recovered": True}
    path = deps.journeys.get_path(customer_id, key)
    if path is not None:
        settle_in_flight(customer_id, message_prefix(path), deps.messages, now, last)
    marked = fail_path(customer_id, key, last, deps.journeys, now)
    return {"status": "failed" if marked else "gone", "recovered": False, "reason": last[:500]}


def settle_in_flight(customer_id: str, prefix: str, log: MessageLog, now: datetime, error: str) -> int:
    """Settle the customer's messages under ``prefix`` still claimed ``sending`` as ``unconfirmed``."""
    settled = 0
    for found in log.for_customer(customer_id):
        if found.get("status") != IN_FLIGHT or not str(found.get("message_id", "")).startswith(prefix):
            continue
        rec = log.get(found["message_id"]) or found  # the listing holds a few fields; settle the whole record
        if rec.get("status") != IN_FLIGHT:
            continue
        reason = f"the step failed after claiming the message ({error[:200]})"
        settled += settle_unconfirmed(rec, reason, log, now) is not None
    return settled


class _Runner:
    """Runs nodes of one path from where it is until one waits or the path ends."""

    def __init__(
        self,
        journey: Journey,
        path: dict[str, Any],
        record: CustomerRecord,
        deps: StepDeps,
        now: datetime,
        dry: bool = False,
    ) -> None:
        self.journey, self.path, self.record, self.deps, self.now = journey, path, record, deps, now
        self.definition = journey.definition
        self.cid = record.customer_id
        self.dry = dry  # an entry's first run: stop before anything with a side effect
        self._events: list[dict[str, Any]] | None = None
        self._policy: SendPolicy | None = None

    def policy(self) -> SendPolicy | None:
        """The deployment's send policy, or ``None`` for a transactional journey (it does not hold it back)."""
        if self.definition.transactional:
            return None
        if self._policy is None:
            self._policy = self.deps.policy()
        return self._policy

    # facts about the customer since a time
    def events_since(self, since: datetime) -> list[dict[str, Any]]:
        if self._events is None:
            self._events = self.deps.customers.customer_events(self.cid)
        return [e for e in self._events if parse_ts(e["timestamp"]) >= since]

    def prefix(self) -> str:
        return message_prefix(self.path)

    def engaged_since(self, since: datetime, message_ids: set[str] | None = None) -> bool:
        """An open or click of this path's messages (of ``message_ids`` when given) since ``since``."""
        for e in self.events_since(since):
            mid = e.get("message_id") or ""
            if e.get("type") in ENGAGEMENT and mid.startswith(self.prefix()):
                if message_ids is None or mid in message_ids:
                    return True
        return False

    def run(self) -> None:
        entered = parse_ts(self.path["entered_at"])
        if self.now >= entered + timedelta(days=self.definition.max_days):
            raise _End("max_days reached")
        trigger_id = (self.path.get("trigger") or {}).get("event_id")
        for e in [] if self.dry else self.events_since(entered):
            # The event that let the customer in never ends the path (a purchase journey may exit on the next one).
            if e.get("type") in self.definition.exit_on and e.get("event_id") != trigger_id:
                raise _End(f"exit_on {e['type']}")
        for _ in range(MAX_NODES_PER_STEP):
            node_id = self.path["node"]
            node = self.definition.nodes[node_id]
            nxt = self.visit(node_id, node)
            self.move(nxt)
        raise _End(f"more than {MAX_NODES_PER_STEP} nodes in one step")

    def move(self, node_id: str) -> None:
        visits = self.path.setdefault("visits", {})
        old = self.path["node"]
        visits[old] = int(visits.get(old, 0)) + 1
        self.path.update(node=node_id, node_at=utc_iso(self.now), state={})

    def visit(self, node_id: str, node: Any) -> str:
        if self.dry and isinstance(node, Message | Cycle | Task | SetAttribute):
            raise _Due
        state = self.path.setdefault("state", {})
        node_at = parse_ts(self.path["node_at"])
        if isinstance(node, Exit):
            visits = self.path.setdefault("visits", {})
            visits[node_id] = int(visits.get(node_id, 0)) + 1
            raise _End(f"exit at {node_id}")
        if isinstance(node, Delay):
            if "until" not in state:
                state["until"] = utc_iso(self.delay_until(node))
            until = parse_ts(state["until"])
            if self.now < until:
                raise _Wait(until)
            return node.next
        if isinstance(node, WaitFor):
            for e in self.events_since(node_at):
                if not event_matches_wait(e, node, self.prefix()):
                    continue
                return node.on_event
            deadline = node_at + timedelta(hours=node.timeout_hours)
            if self.now >= deadline:
                return node.on_timeout
            raise _Wait(deadline)
        if isinstance(node, Split):
            for branch in node.branches:
                if all(self.holds(c) for c in branch.when):
                    return branch.next
            return node.else_
        if isinstance(node, RandomSplit):
            draw = stable_unit("journey-variant", self.journey.journey_id, self.cid, self.path["entry_id"], node_id)
            acc = 0.0
            chosen = node.variants[-1]
            for v in node.variants:
                acc += v.share
                if draw < acc:
                    chosen = v
                    break
            self.path.setdefault("variants", {})[node_id] = chosen.name
            return chosen.next
        if isinstance(node, Message):
            channel = self.best_channel(node)
            if channel is None:
                self.note_message(node_id, node.channel, "skipped", "no channel allowed")
                return node.next
            self.hold_for_quiet_hours(channel)
            self.hold_for_loop(node_id, channel)
            content, variant = node_content(node, self.journey, self.cid, self.path["entry_id"], node_id)
            self.send(node_id, channel, content, self.visit_count(node_id), promo_pool=node.promo_pool, variant=variant)
            return node.next
        if isinstance(node, Cycle):
            return self.cycle(node_id, node, node_at)
        if isinstance(node, Task):
            detail = {
                **node.detail,
                "task_id": f"{self.journey.journey_id}.{self.path['entry_id']}.{node_id}.{self.visit_count(node_id)}",
                "journey_id": self.journey.journey_id,
                "journey_name": self.definition.name,
                "customer_id": self.cid,
                "node": node_id,
                "trigger": self.path.get("trigger") or {},
            }
            self.deps.tasks.emit(node.detail_type, detail)
            return node.next
        if isinstance(node, SetAttribute):
            self.set_attribute(node.attribute, node.value)
            return node.next
        raise AssertionError(f"unknown node {node_id}")  # pragma: no cover

    def visit_count(self, node_id: str) -> int:
        return int(self.path.get("visits", {}).get(node_id, 0))

    def tz(self) -> str:
        return self.record.timezone

    def quiet(self) -> QuietHours | None:
        q = self.definition.quiet_hours
        return QuietHours(q.start, q.end) if q else None

    def delay_until(self, node: Delay) -> datetime:
        seed = (self.journey.journey_id, self.cid, self.path["entry_id"])
        until, seen = delay_end(node, self.record, self.deps.population, self.now, self.quiet(), seed)
        if seen is not None:  # what the model saw when it chose the hour: logged with the next message
            self.path.setdefault("decisions", {})[self.path["node"]] = seen
        return until

    def hold_for_quiet_hours(self, channel: str) -> None:
        """Wait for the end of the quiet hours ``now`` falls in: the journey's own for the channels they hold,
        else the deployment policy's for the channel (not for a transactional journey)."""
        quiet = self.quiet()
        if quiet is not None and self.definition.quiet_channels is not None:
            if channel not in self.definition.quiet_channels:
                quiet = None
        policy = self.policy()
        if quiet is None and policy is not None:
            window = quiet_window(policy, channel)
            quiet = QuietHours(window.start_time, window.end_time) if window else None
        if quiet is None:
            return
        local = self.now.astimezone(zone(self.tz()))
        if not quiet.contains(local):
            return
        end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        raise _Wait(end.astimezone(self.now.tzinfo))

    def hold_for_loop(self, node_id: str, channel: str | None = None) -> None:
        """A loop that comes back to a sending node waits at least :data:`MIN_LOOP_HOURS` since its last
        message from that node (on ``channel`` when given): no definition can flood a customer."""
        latest = None
        for m in self.path.get("messages") or []:
            if m.get("node") != node_id or m.get("status") not in DELIVERED:
                continue
            if channel is not None and m.get("channel") != channel:
                continue
            at = parse_ts(m.get("at"))
            latest = at if latest is None or (at is not None and at > latest) else latest
        if latest is not None and self.now < latest + timedelta(hours=MIN_LOOP_HOURS):
            raise _Wait(latest + timedelta(hours=MIN_LOOP_HOURS))

    def best_channel(self, node: Message) -> str | None:
        if node.channel != "best":
            return node.channel
        rec = self.record.recommendation or {}
        ranked = rec.get("channel_ranking") or []
        order = sorted(node.channels, key=lambda c: ranked.index(c) if c in ranked else len(ranked))
        for ch in order:
            if may_send(self.record, ch)[0]:
                return ch
        return None

    def holds(self, cond: Any) -> bool:
        f = cond.field
        if f.startswith("event."):
            return compare(event_value(self.path.get("trigger") or {}, f[len("event.") :]), cond.op, cond.value)
        if f == "segment":
            filters = segment_filters(self.deps.segments)(str(cond.value))
            if filters is None:
                return cond.op == "ne"
            inside = matches(self.record, filters, self.now)
            return inside if cond.op == "eq" else not inside
        if cond.op == "contains":
            return compare(field_value(self.record, f, self.now), "contains", cond.value)
        return matches_filter(self.record, Filter(field=f, op=cond.op, value=cond.value), self.now)

    def send(
        self,
        node_id: str,
        channel: str,
        content: Any,
        visit: int,
        part: str = "",
        expires: datetime | None = None,
        promo_pool: str | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        message_id = f"{self.prefix()}{node_id}{part}.{visit}"
        last_delay = None  # the send-time decision of the latest best-hour delay, logged with the message
        for d in (self.path.get("decisions") or {}).values():
            last_delay = d
        req = SendRequest(
            message_id=message_id,
            journey_id=self.journey.journey_id,
            customer_id=self.cid,
            channel=channel,
            step=len(self.path.get("messages") or []),
            decision=last_delay,
        )

        def prepare() -> Content | str:
            return Content(
                content,
                self.definition.frequency_cap,
                expires,
                self.policy(),
                topic=self.definition.topic,
                transactional=self.definition.transactional,
                trigger=self.path.get("trigger") or None,
                latest=self.latest_event(),
                promo=(lambda: self.promo_code(promo_pool)) if promo_pool else None,
                links=self.deps.links,
            )

        result = deliver(
            req,
            self.deps.customers,
            prepare,
            self.deps.providers,
            self.deps.messages,
            self.now,
            self.deps.population,
            extra={"journey_id": self.journey.journey_id, "node": node_id, **({"variant": variant} if variant else {})},
            products=self.deps.products,
        )
        self.note_message(node_id, channel, result["status"], result.get("reason") or "", message_id, variant)
        return result

    def latest_event(self) -> dict[str, Any] | None:
        """The customer's latest event other than this journey's own message feedback (the cart as it is now)."""
        if self.dry:
            return None
        since = parse_ts(self.path["entered_at"]) - timedelta(days=30)
        events = [e for e in self.events_since(since) if e.get("type") not in ENGAGEMENT]
        return max(events, key=lambda e: e["timestamp"]) if events else None

    def promo_code(self, pool: str) -> dict[str, str] | None:
        """The path's code of ``pool``: taken once per path (the same code on every message of the path)."""
        codes = self.path.setdefault("promo", {})
        if pool not in codes:
            if self.deps.promo is None:
                return None
            code = self.deps.promo(pool, f"{self.journey.journey_id}.{self.cid}.{self.path['entry_id']}")
            if code is None:
                return None
            codes[pool] = code
        return {"code": codes[pool], "pool": pool}

    def redeemed_since(self, since: datetime) -> bool:
        """A code this path was given was redeemed: a ``promo_redeemed`` event or a purchase naming it."""
        codes = set((self.path.get("promo") or {}).values())
        if not codes:
            return False
        for e in self.events_since(since):
            props = e.get("properties") or {}
            named = props.get("code") if e.get("type") == PROMO_REDEEMED else None
            named = named or props.get("promo_code")
            if e.get("type") in (PROMO_REDEEMED, "purchase") and named in codes:
                return True
        return False

    def note_message(
        self, node_id: str, channel: str, status: str, reason: str, message_id: str = "", variant: str | None = None
    ) -> None:
        msgs = self.path.setdefault("messages", [])
        if message_id and any(m.get("message_id") == message_id for m in msgs):
            return
        msgs.append(
            {
                "node": node_id,
                "channel": channel,
                "status": status,
                "reason": reason,
                "message_id": message_id,
                "at": utc_iso(self.now),
                **({"variant": variant} if variant else {}),
            }
        )

    def expiry_of_trigger(self, field: str | None = None) -> datetime | None:
        if field is None:
            return None
        raw = event_value(self.path.get("trigger") or {}, field)
        try:
            value = parse_ts(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        return value if value is not None and value.utcoffset() is not None else None

    def cycle(self, node_id: str, node: Cycle, node_at: datetime) -> str:
        state = self.path.setdefault("state", {})
        expiry_candidates = [node.expires_at] if node.expires_at is not None else []
        if node.expires_after_hours is not None:
            expiry_candidates.append(node_at + timedelta(hours=node.expires_after_hours))
        from_event = self.expiry_of_trigger(node.expires_at_field)
        if from_event is not None:
            expiry_candidates.append(from_event)
        expiry = min(expiry_candidates) if expiry_candidates else None
        sent_ids = set(state.get("sent") or [])
        if sent_ids and self.engaged_since(node_at, sent_ids):
            return node.next
        if node.promo_pool and self.redeemed_since(node_at):
            return node.next
        if expiry is not None and self.now >= expiry:
            return node.on_expiry
        position = int(state.get("position", 0))
        total = len(node.channels) * node.rounds
        next_at = parse_ts(state["next_at"]) if state.get("next_at") else self.now
        if self.now < next_at:
            raise _Wait(min(next_at, expiry) if expiry else next_at)
        while position < total:
            channel = node.channels[position % len(node.channels)]
            rnd = position // len(node.channels)
            if may_send(self.record, channel)[0]:
                # Held here, the path comes back to this channel (its position is not passed yet).
                self.hold_for_quiet_hours(channel)
                self.hold_for_loop(node_id, channel)
            position += 1
            state["position"] = position
            if not may_send(self.record, channel)[0]:
                continue  # not reachable there: on to the next channel at once
            content, variant = node_content(node, self.journey, self.cid, self.path["entry_id"], node_id)
            result = self.send(
                node_id,
                channel,
                content,
                self.visit_count(node_id),
                part=f"-{rnd}-{channel}",
                expires=expiry,
                promo_pool=node.promo_pool,
                variant=variant,
            )
            if result["status"] in DELIVERED:
                sent_ids.add(result["message_id"])
                state["sent"] = sorted(sent_ids)
                until = self.now + timedelta(hours=node.wait_after(len(sent_ids) - 1))
                state["next_at"] = utc_iso(until)
                raise _Wait(min(until, expiry) if expiry else until)
        return node.on_expiry

    def set_attribute(self, name: str, value: Any) -> None:
        from kairos.customers.profiles import MAX_ATTEMPTS

        for _ in range(MAX_ATTEMPTS):
            record = self.deps.customers.get_customer(self.cid)
            if record is None or not record.profile:
                return  # no profile to hold attributes
            profile = dict(record.profile)
            attributes = dict(profile.get("attributes") or {})
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = value
            profile["attributes"] = attributes
            try:
                self.deps.customers.put_profile(record, profile, None, self.now)
            except ConflictError:
                continue
            self.record = record
            return


def event_matches_wait(event: dict[str, Any], node: WaitFor, prefix: str) -> bool:
    """Whether an event is what a wait node waits for; opens and clicks count for this path's messages only."""
    if not event_matches(event, node.event, node.where):
        return False
    if node.event in ENGAGEMENT:
        return str(event.get("message_id") or "").startswith(prefix)
    return True
