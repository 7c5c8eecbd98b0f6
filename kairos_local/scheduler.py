"""What AWS triggers by itself, run locally: DynamoDB stream triggers and the template's schedules.

In AWS, Lambda's event source mappings poll the DynamoDB streams, and EventBridge (rules and Scheduler)
invokes functions and starts state machines at their ``ScheduleExpression``. Locally, :class:`LocalTriggers`
does both from one background loop: every tick it pumps the streams
(:meth:`kairos_local.runtime.LocalRuntime.pump_streams`) and fires every schedule whose time has come on the
runtime's clock. Schedules are read from the template, not listed here: every ``Schedule`` or ``ScheduleV2``
event of an ``AWS::Serverless::Function`` or ``AWS::Serverless::StateMachine`` is fired, so a schedule added
to the template runs locally with no change here.

Expressions follow EventBridge: ``rate(1 minute)``, ``rate(5 minutes)`` (hours, days), six-field
``cron(minutes hours day-of-month month day-of-week year)`` with ``*``, ``?``, lists, ranges, steps, month and
day names, ``L`` and ``#``, and ``at(yyyy-mm-ddThh:mm:ss)`` (Scheduler's one-time schedules).
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kairos.core.timeutil import utc_iso

if TYPE_CHECKING:
    from kairos_local.runtime import LocalRuntime
    from kairos_local.stepfunctions import Hold, SimulatedClock, WallClock
    from kairos_local.template import Deployment

log = logging.getLogger(__name__)

# SAM names the expression differently in an EventBridge rule (Schedule) and a Scheduler schedule (ScheduleV2).
EXPRESSION_PROPERTY = {"Schedule": "Schedule", "ScheduleV2": "ScheduleExpression"}
SCHEDULE_EVENT_TYPES = tuple(EXPRESSION_PROPERTY)
TARGET_TYPES = ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")


class ScheduleExpression(ABC):
    """When a schedule fires."""

    @abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first time strictly after ``after`` (aware) that the schedule fires; ``None``: never again."""


@dataclass(frozen=True)
class Rate(ScheduleExpression):
    """``rate(N unit)``: every ``period``, counted from ``origin`` (when the schedule was created)."""

    period: timedelta
    origin: datetime

    def next_after(self, after: datetime) -> datetime | None:
        if after < self.origin:
            return self.origin + self.period
        return self.origin + self.period * ((after - self.origin) // self.period + 1)


@dataclass(frozen=True)
class At(ScheduleExpression):
    """``at(...)``: once."""

    when: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.when if self.when > after else None


class Cron(ScheduleExpression):
    """``cron(minutes hours day-of-month month day-of-week year)`` in a time zone, as EventBridge reads it.

    One of day-of-month and day-of-week is ``?``. Days of week are 1 (SUN) to 7 (SAT); ``L`` is the last day
    of the month (day-of-month) or, after a day, the last such day of the month (``6L``: last Friday);
    ``2#1`` is the first Monday.
    """

    def __init__(self, fields: str, timezone: str = "UTC") -> None:
        parts = fields.split()
        if len(parts) != 6:
            raise ValueError(f"cron needs 6 fields (minutes hours day-of-month month day-of-week year): {fields!r}")
        minutes, hours, dom, months, dow, years = parts
        if (dom == "?") == (dow == "?"):
            raise ValueError(f"cron needs ? in exactly one of day-of-month and day-of-week: {fields!r}")
        self.expression = f"cron({fields})"
        self.tz = ZoneInfo(timezone)
        self.minutes = _field(minutes, 0, 59)
        self.hours = _field(hours, 0, 23)
        self.months = _field(months, 1, 12, _MONTHS)
        self.years = None if years == "*" else _field(years, 1970, 2199)
        self.days: frozenset[int] | None = None
        self.last_day = False
        self.weekdays: frozenset[int] | None = None
        self.nth: frozenset[tuple[int, int]] = frozenset()  # (day of week, n); n = -1 is the last of the month
        if dom != "?":
            self.last_day = dom == "L"
            self.days = frozenset() if self.last_day else _field(dom, 1, 31)
        else:
            self._weekday_field(dow)

    def _weekday_field(self, text: str) -> None:
        plain, nth = [], set()
        for item in text.split(","):
            if m := re.fullmatch(r"(\w+)#([1-5])", item):
                nth.add((_value(m.group(1), 1, 7, _DAYS), int(m.group(2))))
            elif m := re.fullmatch(r"(\w+)L", item):
                nth.add((_value(m.group(1), 1, 7, _DAYS), -1))
            elif item == "L":
                plain.append("7")  # L alone in day-of-week is its last day, Saturday
            else:
                plain.append(item)
        self.weekdays = _field(",".join(plain), 1, 7, _DAYS) if plain else frozenset()
        self.nth = frozenset(nth)

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.tz.key!r})"

    def _day_matches(self, d: date) -> bool:
        last = calendar.monthrange(d.year, d.month)[1]
        if self.days is not None:
            return d.day in self.days or (self.last_day and d.day == last)
        weekday = d.isoweekday() % 7 + 1  # cron counts 1 = Sunday
        if self.weekdays and weekday in self.weekdays:
            return True
        return any(
            wd == weekday and ((n == -1 and d.day + 7 > last) or (n > 0 and (d.day - 1) // 7 + 1 == n))
            for wd, n in self.nth
        )

    def next_after(self, after: datetime) -> datetime | None:
        # Walk local wall time field by field (a year, a month, a day, an hour at a time where they cannot
        # match), so a yearly expression costs a few hundred steps, not half a million minutes.
        t = after.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        last_year = max(self.years) if self.years else t.year + 30
        while t.year <= last_year:
            if self.years is not None and t.year not in self.years:
                t = datetime(t.year + 1, 1, 1)
            elif t.month not in self.months:
                t = datetime(t.year + t.month // 12, t.month % 12 + 1, 1)
            elif not self._day_matches(t.date()):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                found = t.replace(tzinfo=self.tz).astimezone(UTC)
                if found > after:  # a local time repeated when clocks go back fires once
                    return found
                t += timedelta(minutes=1)
        return None


# EventBridge's names, in English whatever the locale (calendar.month_abbr follows the locale).
_MONTHS = {
    name: i
    for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}


def _value(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> int:
    value = (names or {}).get(text.upper()) if not text.isdigit() else int(text)
    if value is None or not lo <= value <= hi:
        raise ValueError(f"{text!r} is not a value from {lo} to {hi}")
    return value


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """One cron field: ``*``, ``5``, ``MON``, ``1-5``, ``0/15``, ``*/10``, ``1-30/2`` and lists of them."""
    out: set[int] = set()
    for item in text.split(","):
        spec, _, step_text = item.partition("/")
        step = _value(step_text, 1, hi) if step_text else 1
        if spec == "*":
            first, last = lo, hi
        elif "-" in spec:
            a, b = spec.split("-", 1)
            first, last = _value(a, lo, hi, names), _value(b, lo, hi, names)
            if last < first:
                raise ValueError(f"range {spec!r} runs backwards")
        else:
            first = _value(spec, lo, hi, names)
            last = hi if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def parse_schedule(expression: str, origin: datetime, timezone: str = "UTC") -> ScheduleExpression:
    """Read an EventBridge schedule expression.

    Parameters
    ----------
    expression
        ``rate(N unit)``, ``cron(6 fields)`` or ``at(yyyy-mm-ddThh:mm:ss)``.
    origin
        When the schedule was created: a rate counts its periods from here.
    timezone
        The IANA zone of cron and at expressions (Scheduler's ``ScheduleExpressionTimezone``; rules use UTC).

    Returns
    -------
    ScheduleExpression
        Its ``next_after(t)`` gives the first firing after ``t``.

    Raises
    ------
    ValueError
        The expression is not one EventBridge accepts (``rate(1 minutes)`` included: one takes the singular).

    Example
    -------
    >>> t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    >>> parse_schedule("cron(0 2 * * ? *)", t0).next_after(t0)
    datetime.datetime(2026, 3, 3, 2, 0, tzinfo=datetime.timezone.utc)
    """
    text = expression.strip()
    if m := _RATE.fullmatch(text):
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"{expression!r}: a rate of 1 takes a singular unit, any other a plural one")
        return Rate(_UNITS[unit.rstrip("s")] * value, origin)
    if m := re.fullmatch(r"cron\((.*)\)", text):
        return Cron(m.group(1), timezone)
    if m := re.fullmatch(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)", text):
        return At(datetime.fromisoformat(m.group(1)).replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC))
    raise ValueError(f"not a schedule expression: {expression!r}")


@dataclass(frozen=True)
class ScheduledTarget:
    """One ``Schedule``/``ScheduleV2`` event of the template: what it starts, when, with what input."""

    logical_id: str  # the function or state machine
    kind: str  # its resource type
    event_name: str
    event_type: str
    expression: ScheduleExpression
    input: str | None  # the event's Input (a JSON text), as the template resolves it
    rule_name: str  # the rule's (or schedule's) Name, else the one SAM would make up

    def payload(self, dep: Deployment, when: datetime) -> dict[str, Any]:
        """The event a function receives: the Input, else an EventBridge scheduled event."""
        if self.input is not None:
            return json.loads(self.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": dep.account,
            "time": utc_iso(when.replace(microsecond=0)),
            "region": dep.region,
            "resources": [f"arn:aws:events:{dep.region}:{dep.account}:rule/{self.rule_name}"],
            "detail": {},
        }


def scheduled_targets(dep: Deployment, origin: datetime) -> list[ScheduledTarget]:
    """Every enabled ``Schedule`` and ``ScheduleV2`` event of the deployment's functions and state machines.

    Parameters
    ----------
    dep
        The deployment (its parameters resolve ``!Ref`` expressions such as ``ScoreSchedule``).
    origin
        When the schedules were created (rates count from here).

    Returns
    -------
    list[ScheduledTarget]
        In template order; a schedule with ``State: DISABLED`` or ``Enabled: false`` is left out, as
        EventBridge would never fire it.

    Raises
    ------
    ValueError
        A schedule expression EventBridge would refuse.
    """
    out = []
    for kind in TARGET_TYPES:
        for lid, res in dep.of_type(kind).items():
            for name, ev in res.get("Properties", {}).get("Events", {}).items():
                if ev.get("Type") not in SCHEDULE_EVENT_TYPES:
                    continue
                props = dep.resolve(ev.get("Properties", {}))
                if str(props.get("State", "ENABLED")).upper() == "DISABLED" or props.get("Enabled") in (False, "false"):
                    continue
                tz = props.get("ScheduleExpressionTimezone", "UTC")
                raw = props.get("Input")
                text = raw if isinstance(raw, str) or raw is None else json.dumps(raw)
                try:
                    expr = parse_schedule(str(props[EXPRESSION_PROPERTY[ev["Type"]]]), origin, tz)
                except ValueError as exc:
                    raise ValueError(f"{lid} event {name}: {exc}") from exc
                rule = str(props.get("Name") or f"{dep.prefix}-{lid}{name}")
                out.append(ScheduledTarget(lid, kind, name, ev["Type"], expr, text, rule))
    return out


class LocalTriggers:
    """A background loop that pumps the DynamoDB streams and fires the template's schedules on a clock.

    Each tick delivers new stream records, then fires every schedule whose next time has come on the clock:
    a function is invoked in-process with the event's ``Input`` (else an EventBridge scheduled event), a state
    machine gets an execution with the ``Input``. A tick comes every ``tick_s`` of real time, and as soon as
    the clock reaches a schedule's next time. On a clock that can hold (:meth:`WallClock.hold
    <kairos_local.stepfunctions.WallClock.hold>`) each schedule holds its next time, so the clock stands
    there until the firing and the work it started are done: a timer due every minute runs at every minute,
    at the minute, whatever the speed. On another clock occurrences that fell within one tick are fired once,
    for the first of them: a timer handles whatever is due when it runs, as it would after a late start in
    AWS. Schedules fire on the loop's thread, one at a time, so a slow timer delays the next tick rather than
    piling up; the functions they invoke run at once with those of the API, the streams and the state machines.

    Parameters
    ----------
    runtime
        The deployment whose streams and schedules run.
    clock
        The clock schedules follow (a :class:`~kairos_local.stepfunctions.WallClock` for a server).
    tick_s
        Real seconds between ticks.
    """

    def __init__(self, runtime: LocalRuntime, clock: SimulatedClock | WallClock, tick_s: float = 0.5) -> None:
        self.runtime = runtime
        self.clock = clock
        self.tick_s = tick_s
        self.targets = scheduled_targets(runtime.dep, clock.now())
        self.next_at: dict[ScheduledTarget, datetime | None] = {
            t: t.expression.next_after(clock.now()) for t in self.targets
        }
        self.fired: dict[str, int] = {}  # "<logical id>.<event>" -> firings, for tests and the log
        # The clock stands at each schedule's next time until it has fired (a clock that cannot hold, such as
        # a test's fake or the discrete-event clock, fires late instead).
        self._hold = getattr(clock, "hold", None)
        self._holds: dict[ScheduledTarget, Hold] = {}
        for target, due in self.next_at.items():
            self._hold_at(target, due)
        # Made here, on the thread that owns the session: boto3 sessions are not thread-safe.
        self._sfn = runtime.session.client("stepfunctions")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """Pump the streams once, then fire the schedules that are due."""
        try:
            with self.clock.busy():
                self.runtime.pump_streams()
        except Exception:  # a failed batch is logged; the loop goes on, as the event source mapping does
            log.exception("a stream trigger failed")
        now = self.clock.now()
        for target, due in self.next_at.items():
            if due is None or due > now or self._stop.is_set():
                continue
            self.next_at[target] = target.expression.next_after(now)
            try:
                self.fire(target, due)
            except Exception:
                log.exception("schedule %s.%s failed", target.logical_id, target.event_name)
            finally:
                # The next time is held before this one is let go, so the clock never runs free past either.
                self._hold_at(target, self.next_at[target])

    def _hold_at(self, target: ScheduledTarget, when: datetime | None) -> None:
        previous = self._holds.pop(target, None)
        if self._hold is not None and when is not None:
            self._holds[target] = self._hold(when)
        if previous is not None:
            previous.release()

    def fire(self, target: ScheduledTarget, when: datetime) -> None:
        """Start what ``target`` starts, as its schedule would at ``when``."""
        key = f"{target.logical_id}.{target.event_name}"
        self.fired[key] = self.fired.get(key, 0) + 1
        if target.kind == "AWS::Serverless::StateMachine":
            log.info("schedule %s starts an execution (due %s)", key, utc_iso(when))
            self._sfn.start_execution(
                stateMachineArn=self.runtime.dep.physical[target.logical_id],
                name=f"{target.event_name}-{uuid.uuid4().hex[:24]}",
                input=target.input if target.input is not None else "{}",
            )
        else:
            # A timer every minute at an hour per second fires twice a second: not worth a line each.
            log.debug("schedule %s invokes the function (due %s)", key, utc_iso(when))
            with self.clock.busy():
                self.runtime.invoke(target.logical_id, target.payload(self.runtime.dep, when))

    def run(self) -> None:
        wait_until = getattr(self.clock, "wait_until", None)
        while not self._stop.is_set():
            due = min((t for t in self.next_at.values() if t is not None), default=None)
            if wait_until is not None and due is not None and not self.clock.closed:
                wait_until(due, self.tick_s)
            else:
                self._stop.wait(self.tick_s)
            if not self._stop.is_set():
                self.tick()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="kairos-triggers", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop and wait for a tick in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        for target in list(self._holds):
            self._hold_at(target, None)
