"""Run the template's state machines on moto's Step Functions interpreter, with Lambdas in-process and
compressed time.

moto executes ASL when started with ``{"stepfunctions": {"execute_state_machine": True}}``, but it invokes
Lambdas through its Lambda service (which needs Docker), sleeps through Wait states and retry intervals in
real time, and measures ``Timestamp`` waits against the wall clock. Inside :func:`local_stepfunctions`:

- Lambda tasks call the template's handlers in-process through :class:`~kairos_local.runtime.LocalRuntime`;
  a handler's exception becomes a Lambda function error whose ``errorType`` is the exception's class name,
  as in Lambda, so ``Retry``/``Catch`` on ``"ProviderThrottled"`` match. :class:`LambdaServiceError` raised
  instead plays a failure of the Lambda service itself (``Lambda.ServiceException``,
  ``Lambda.TooManyRequestsException``...), which never reached the handler.
- ``Retry`` and ``Catch`` follow the Step Functions rules: a retrier's ``ErrorEquals`` matches by name, with
  ``States.ALL`` matching everything but the terminal ``States.Runtime``/``States.DataLimitExceeded`` and
  ``States.TaskFailed`` everything but those and ``States.Timeout`` (:func:`error_matches`); the first
  matching retrier decides, its interval is ``IntervalSeconds * BackoffRate ** n`` capped by ``MaxDelaySeconds``,
  then drawn uniformly below that with ``JitterStrategy: FULL``; ``MaxAttempts`` counts per retrier and starts
  over when the state is entered again. An error no retrier takes (or one whose retrier is spent) goes to the
  first matching catcher, which puts ``{"Error", "Cause"}`` at its ``ResultPath``. moto's interpreter does the
  bookkeeping; this module replaces its error matching and its random source (seedable for tests).
- Waits and retry intervals park on a discrete-event :class:`SimulatedClock`, which jumps to the next
  wake-up once every execution is parked (``scale`` > 0 also spends that fraction of each jump in real
  time), or on a :class:`WallClock`, which follows real time at a speed but stands still at a due time until
  the work due then is done (``make serve``); ``Timestamp`` waits count from the clock's now. Handlers read
  the time through :func:`kairos.core.timeutil.now`, which the runner points at the clock.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import re
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core import timeutil
from kairos_local.template import ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kairos_local.runtime import LocalRuntime
    from kairos_local.template import Deployment

ROLE_ARN = "arn:aws:iam::123456789012:role/kairos-local-states"

# Errors that end an execution whatever its Retry and Catch say (Step Functions error handling).
TERMINAL_ERRORS = frozenset({"States.Runtime", "States.DataLimitExceeded"})
TIMEOUT_ERRORS = frozenset({"States.Timeout", "States.HeartbeatTimeout"})


def error_matches(error_equals: list[str], error: str) -> bool:
    """Whether a retrier's or catcher's ``ErrorEquals`` takes ``error``, as Step Functions decides it.

    Parameters
    ----------
    error_equals
        The names listed by the retrier or catcher.
    error
        The error the state reported (a handler's exception class name, ``Lambda.ServiceException``...).

    Returns
    -------
    bool
        ``States.Runtime`` is never taken (it always fails the execution); ``States.DataLimitExceeded`` only by
        name; ``States.ALL`` takes every other error; ``States.TaskFailed`` every other error but a timeout.

    Example
    -------
    >>> error_matches(["States.TaskFailed"], "ProviderUnavailable"), error_matches(["States.ALL"], "States.Runtime")
    (True, False)
    """
    if error == "States.Runtime":
        return False
    if error in error_equals:
        return True
    if error in TERMINAL_ERRORS:
        return False
    if "States.ALL" in error_equals:
        return True
    return "States.TaskFailed" in error_equals and error not in TIMEOUT_ERRORS


class LambdaServiceError(Exception):
    """A failure of the Lambda service, not of the handler: the task fails with ``Lambda.<code>``.

    Raise it from a wrapped :meth:`LocalRuntime.invoke` (tests) to play what the ``Retry`` of a Lambda task
    exists for: ``LambdaServiceError("TooManyRequestsException")`` fails the task with
    ``Lambda.TooManyRequestsException``.
    """

    def __init__(self, code: str = "ServiceException", message: str = "the Lambda service failed") -> None:
        super().__init__(message)
        self.code = code


class SimulatedClock:
    """Now, as the state machines see it: a discrete-event clock.

    A Wait (or a retry interval) registers its wake-up time and blocks. When nothing has happened for
    ``quiet_s`` of real time (no Lambda running, no new wait: every execution is parked in a wait), the
    clock jumps to the earliest wake-up and releases the executions waiting for it, so concurrent journeys
    each see the time they asked for, not the sum of everybody's waits. ``scale`` > 0 also spends that
    fraction of each jump in real time (``scale=1/3600`` plays an hour in a second).
    """

    def __init__(self, start: datetime | None = None, quiet_s: float = 0.03) -> None:
        self._now = start or datetime.now(UTC)
        self._cond = threading.Condition()
        self._targets: list[datetime] = []
        self._busy = 0
        self._last = time.monotonic()
        self.quiet_s = quiet_s
        self.scale = 0.0
        self._driver: threading.Thread | None = None
        self._closed = False
        self._local = threading.local()
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._sleeping = 0
        self._sleepers: list[tuple[datetime, int, threading.Event]] = []
        self._seq = 0
        # How many executions are running (set by local_stepfunctions): the clock jumps only when at least
        # that many threads are parked in a wait, so an execution between two states is never overtaken.
        self.running: Callable[[], int] | None = None

    def now(self) -> datetime:
        with self._cond:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by hand (tests; nothing waiting is released early)."""
        with self._cond:
            self._now += timedelta(seconds=max(0.0, seconds))
            while self._sleepers and self._sleepers[0][0] <= self._now:
                heapq.heappop(self._sleepers)[2].set()
            self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self.now() + timedelta(seconds=max(0.0, seconds)))

    def sleep_until(self, target: datetime) -> None:
        # Busy work that waits (a Lambda or timer sleeping) is not busy while it waits.
        held = getattr(self._local, "depth", 0)
        with self._cond:
            if target <= self._now or self._closed:
                return
            heapq.heappush(self._targets, target)
            # One event per sleeper, set by the driver when its time comes: waking every sleeper on every
            # change of the clock's state would cost O(sleepers) per change, and a demo has thousands.
            wake = threading.Event()
            self._seq += 1
            heapq.heappush(self._sleepers, (target, self._seq, wake))
            self._busy -= held
            self._sleeping += 1
            self._last = time.monotonic()
            self._cond.notify_all()
        wake.wait()
        with self._cond:
            self._sleeping -= 1
            self._busy += held

    def call_at(self, when: datetime, fn: Callable[[], None]) -> None:
        """Run ``fn`` (in its own thread, as busy work) once the clock reaches ``when``.

        Registered at once, so the clock cannot jump past ``when`` before ``fn`` has run: this is how
        simulated customers answer a message at the simulated minute they read it.
        """
        with self._cond:
            self._timer_seq += 1
            heapq.heappush(self._timers, (when, self._timer_seq, fn))
            heapq.heappush(self._targets, when)
            self._last = time.monotonic()
            self._cond.notify_all()

    def _run_timer(self, fn: Callable[[], None]) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            fn()
        finally:
            self._release()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark work in progress (a Lambda call): the clock does not jump meanwhile."""
        with self._cond:
            self._busy += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """The end of busy work on this thread."""
        self._local.depth -= 1
        with self._cond:
            self._busy -= 1
            self._last = time.monotonic()
            self._cond.notify_all()

    def start(self) -> None:
        if self._driver is None:
            self._closed = False
            self._driver = threading.Thread(target=self._drive, name="kairos-clock", daemon=True)
            self._driver.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def stop(self) -> None:
        """Stop driving; every thread still waiting on this clock is released at once (and later waits too)."""
        with self._cond:
            self._closed = True
            while self._sleepers:
                heapq.heappop(self._sleepers)[2].set()
            self._cond.notify_all()
        if self._driver is not None:
            self._driver.join(timeout=2)
            self._driver = None

    def _drive(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                quiet = time.monotonic() - self._last >= self.quiet_s
                parked = self.running is None or self.running() <= self._sleeping
                if not (self._targets and self._busy == 0 and quiet and parked):
                    self._cond.wait(timeout=self.quiet_s / 3)
                    continue
                target = heapq.heappop(self._targets)
                while self._targets and self._targets[0] <= target:
                    heapq.heappop(self._targets)
                jump = max(0.0, (target - self._now).total_seconds())
            if self.scale > 0 and jump > 0:
                time.sleep(jump * self.scale)
            with self._cond:
                if target > self._now:
                    self._now = target
                while self._sleepers and self._sleepers[0][0] <= self._now:
                    heapq.heappop(self._sleepers)[2].set()
                due = []
                while self._timers and self._timers[0][0] <= self._now:
                    due.append(heapq.heappop(self._timers)[2])
                self._busy += len(due)
                self._last = time.monotonic()
                self._cond.notify_all()
            for fn in due:
                threading.Thread(target=self._run_timer, args=(fn,), daemon=True).start()


# A wait longer than this (real seconds) wakes up to look at the clock again: Condition.wait refuses
# timeouts beyond threading.TIMEOUT_MAX, and a shorter wake-up costs nothing.
_MAX_REAL_WAIT_S = 3600.0
# How often (real seconds) a clock standing still looks whether the executions have parked or ended: moto
# does not tell when an execution moves between states, so this is polled (a Lambda ending is notified).
_IDLE_POLL_S = 0.002


class Hold:
    """A simulated time the clock may reach but not pass until :meth:`release` (see :meth:`WallClock.hold`)."""

    def __init__(self, clock: WallClock, when: datetime, seq: int) -> None:
        self.clock, self.when, self.seq = clock, when, seq

    def release(self) -> None:
        """What was due has been handled: the clock goes on once the work it started is done."""
        self.clock._release(self)


class WallClock:
    """Now, as the product sees it under ``make serve``: real time run ``speed`` times as fast, standing still
    while the work that is due is handled.

    Between due times the clock follows real time at ``speed``, so HTTP clients, stream triggers and schedules
    share one timeline with the executions. Whatever is due at a simulated time T (a Wait or a retry interval
    ending, a :meth:`call_at` timer, a :meth:`hold` such as a schedule's next firing) stops the clock at T, and
    it goes on from T, not from where real time has got to, once that work and all it started are done: no
    Lambda in progress (:meth:`busy`) and every running execution parked in a wait. So handling takes no
    simulated time however slow the machine: a send planned for 10:00 goes at 10:00 at an hour per second,
    where a clock that only followed real time would turn the real seconds of a few hundred Lambda calls into
    hours. Requests to the API do not stop it (their latency is the client's, as in AWS); what they start
    (executions) does. It has the interface of :class:`SimulatedClock`, so :func:`local_stepfunctions` runs on
    either.

    Parameters
    ----------
    speed
        Simulated seconds per real second: 1 is real time, 60 a minute per second, 3600 an hour per second.
    start
        The simulated time at construction (default: now).
    poll_s
        Real seconds between two looks, while the clock stands, at whether the executions have parked.

    Raises
    ------
    ValueError
        ``speed`` is not a positive finite number.

    Example
    -------
    >>> clock = WallClock(speed=3600, start=datetime(2026, 3, 2, 9, tzinfo=UTC))
    >>> clock.sleep(1800)  # half an hour: half a real second
    >>> clock.now() >= datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    True
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None, poll_s: float = _IDLE_POLL_S) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"clock speed must be a positive number, not {speed!r}")
        self.speed = float(speed)
        self.poll_s = poll_s
        self.started = start or datetime.now(UTC)
        self.real_started = datetime.now(UTC)
        # Simulated now at the real instant _real; it stands at _sim while _moving is False.
        self._sim = self.started
        self._real = time.monotonic()
        self._moving = True
        self._lock = threading.Lock()
        # The driver and wait_until wait on it; parked executions wait on an event each, set when their time
        # comes, so a change of the clock's state does not wake thousands of parked journeys.
        self._changed = threading.Condition(self._lock)
        self._busy = 0
        self._local = threading.local()
        self._sleeping = 0
        self._sleepers: list[tuple[datetime, int, threading.Event]] = []
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._holds: list[tuple[datetime, int]] = []
        self._released: set[int] = set()
        self._seq = 0
        self._closed = False
        self._driver: threading.Thread | None = None
        # Set by local_stepfunctions: scale is SimulatedClock's knob (this clock's pace is its speed); running
        # counts the open executions, so the clock stands until each is parked in a wait.
        self.scale = 0.0
        self.running: Callable[[], int] | None = None

    # ------------------------------------------------------------ reading

    def now(self) -> datetime:
        with self._lock:
            return self._now()

    def _now(self) -> datetime:
        # Under the lock.
        if not self._moving:
            return self._sim
        t = time.monotonic()
        free = self._sim + timedelta(seconds=(t - self._real) * self.speed)
        due = self._next_due()
        if due is not None and free >= due:
            # It stands at what is due: the real time spent there is no simulated time.
            self._sim, self._real = max(due, self._sim), t
            return self._sim
        return free

    def _next_due(self) -> datetime | None:
        # Under the lock: the earliest wake-up, timer or hold not yet released.
        while self._holds and self._holds[0][1] in self._released:
            self._released.discard(heapq.heappop(self._holds)[1])
        heads = [h[0][0] for h in (self._sleepers, self._timers, self._holds) if h]
        return min(heads) if heads else None

    def state(self) -> dict[str, Any]:
        """The clock for people: ``now``, ``speed``, ``started`` (simulated), ``real_now``, ``real_started``,
        ``advancing`` (``False`` while it stands at a due time for the work due then) and ``next_due``."""
        with self._lock:
            now, due = self._now(), self._next_due()
            advancing = self._moving and (due is None or now < due) and not self._closed
        return {
            "now": now,
            "speed": self.speed,
            "advancing": advancing,
            "next_due": due,
            "started": self.started,
            "real_now": datetime.now(UTC),
            "real_started": self.real_started,
        }

    # ------------------------------------------------------------ standing and going on

    def _stand(self) -> None:
        # Under the lock: work is due or in progress; the clock waits for it at the time it has now.
        if self._moving:
            self._sim = self._now()
            self._moving = False
        self._changed.notify_all()

    def advance(self, seconds: float) -> None:
        """Move the clock forward at once (waits and timers due by then end now)."""
        with self._lock:
            self._sim = self._now() + timedelta(seconds=max(0.0, seconds))
            self._real = time.monotonic()
            self._changed.notify_all()
        self._ensure_driver()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Work in progress (a Lambda call): the clock stands still until it ends."""
        with self._lock:
            self._busy += 1
            self._stand()
        self._local.depth = getattr(self._local, "depth", 0) + 1
        self._ensure_driver()
        try:
            yield
        finally:
            self._done()

    def _done(self) -> None:
        """The end of busy work on this thread."""
        self._local.depth -= 1
        with self._lock:
            self._busy -= 1
            self._changed.notify_all()

    # ------------------------------------------------------------ what is due

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self.now() + timedelta(seconds=max(0.0, seconds)))

    def sleep_until(self, target: datetime) -> None:
        # Busy work that waits (a Lambda or timer sleeping) is not busy while it waits.
        held = getattr(self._local, "depth", 0)
        with self._lock:
            if self._closed or target <= self._now():
                return
            self._seq += 1
            wake = threading.Event()
            heapq.heappush(self._sleepers, (target, self._seq, wake))
            self._sleeping += 1
            self._busy -= held
            self._changed.notify_all()
        self._ensure_driver()
        wake.wait()  # the driver (or stop) sets it, and counts this thread out of the sleepers
        with self._lock:
            self._busy += held

    def call_at(self, when: datetime, fn: Callable[[], None]) -> None:
        """Run ``fn`` in its own thread, as busy work, once the clock reaches ``when`` (it stands there meanwhile)."""
        with self._lock:
            self._seq += 1
            heapq.heappush(self._timers, (when, self._seq, fn))
            self._changed.notify_all()
        self._ensure_driver()

    def hold(self, when: datetime) -> Hold:
        """Keep the clock from passing ``when`` until the returned :class:`Hold` is released.

        How something outside the clock makes its due times exact: the schedules hold their next firing, so
        at an hour per second a timer due every minute still runs at every minute.
        """
        with self._lock:
            self._seq += 1
            heapq.heappush(self._holds, (when, self._seq))
            held = Hold(self, when, self._seq)
        self._ensure_driver()
        return held

    def _release(self, hold: Hold) -> None:
        with self._lock:
            # Stands first (at the hold, if it got there), so it goes on from there once the work is done.
            self._stand()
            self._released.add(hold.seq)

    def wait_until(self, when: datetime, timeout_s: float) -> bool:
        """Block until the clock reaches ``when`` (``True``) or ``timeout_s`` real seconds pass (``False``)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not self._closed:
                now = self._now()
                if now >= when:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                step = (when - now).total_seconds() / self.speed if self._moving else left
                self._changed.wait(timeout=min(left, step, _MAX_REAL_WAIT_S))
        return False

    # ------------------------------------------------------------ the driver

    def _ensure_driver(self) -> None:
        with self._lock:
            if self._driver is not None or self._closed:
                return
            self._driver = threading.Thread(target=self._drive, name="kairos-wall-clock", daemon=True)
        self._driver.start()

    def start(self) -> None:
        self._closed = False
        self._ensure_driver()

    @property
    def closed(self) -> bool:
        return self._closed

    def stop(self) -> None:
        """Stop; every thread still waiting on this clock is released at once (and later waits too)."""
        with self._lock:
            self._closed = True
            while self._sleepers:
                heapq.heappop(self._sleepers)[2].set()
                self._sleeping -= 1
            self._timers.clear()
            self._holds.clear()
            self._moving = True
            self._changed.notify_all()
            driver, self._driver = self._driver, None
        if driver is not None and driver is not threading.current_thread():
            driver.join(timeout=2)

    def _drive(self) -> None:
        while True:
            due: list[Callable[[], None]] = []
            with self._lock:
                if self._closed:
                    return
                now = self._now()
                if any(h and h[0][0] <= now for h in (self._sleepers, self._timers)):
                    # What wakes works at this time: the clock stands before the wake-up stops holding it.
                    self._stand()
                woke = 0
                while self._sleepers and self._sleepers[0][0] <= now:
                    heapq.heappop(self._sleepers)[2].set()
                    woke += 1
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                if woke or due:
                    # Out of the sleepers and busy at once, so the clock cannot go on between a wake-up and
                    # the work it starts.
                    self._sleeping -= woke
                    self._busy += len(due)
                elif not self._moving:
                    if self._busy == 0 and (self.running is None or self.running() <= self._sleeping):
                        self._real, self._moving = time.monotonic(), True
                        self._changed.notify_all()
                        continue
                    # A Lambda ending notifies; an execution parking or ending does not, so look again soon.
                    self._changed.wait(timeout=_MAX_REAL_WAIT_S if self._busy else self.poll_s)
                else:
                    wake_at = min((h[0][0] for h in (self._sleepers, self._timers) if h), default=None)
                    left = _MAX_REAL_WAIT_S if wake_at is None else (wake_at - now).total_seconds() / self.speed
                    if left > 0:
                        self._changed.wait(timeout=min(left, _MAX_REAL_WAIT_S))
            for fn in due:
                threading.Thread(
                    target=self._run_timer, args=(fn,), name="kairos-wall-clock-timer", daemon=True
                ).start()

    def _run_timer(self, fn: Callable[[], None]) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            fn()
        finally:
            self._done()


def deploy_state_machines(dep: Deployment, session: Any) -> dict[str, str]:
    """Create every ``AWS::Serverless::StateMachine`` of the template; return logical id -> ARN."""
    sfn = session.client("stepfunctions")
    arns = {}
    for lid, res in dep.of_type("AWS::Serverless::StateMachine").items():
        props = res["Properties"]
        text = (ROOT / props["DefinitionUri"]).read_text()
        subs = {k: str(dep.resolve(v)) for k, v in props.get("DefinitionSubstitutions", {}).items()}
        text = re.sub(r"\$\{(\w+)\}", lambda m, subs=subs: subs[m.group(1)], text)
        kwargs: dict[str, Any] = {
            "name": str(dep.resolve(props["Name"])) if "Name" in props else f"{dep.prefix}-{lid}",
            "definition": text,
            "roleArn": ROLE_ARN,
            "type": props.get("Type", "STANDARD"),
        }
        if "Logging" in props:
            kwargs["loggingConfiguration"] = _logging_configuration(dep.resolve(props["Logging"]))
        arn = sfn.create_state_machine(**kwargs)["stateMachineArn"]
        dep.physical[lid] = arn
        dep.attributes[(lid, "Arn")] = arn
        arns[lid] = arn
    return arns


def _logging_configuration(logging: dict[str, Any]) -> dict[str, Any]:
    """SAM's ``Logging`` property in the shape of the CreateStateMachine API."""
    return {
        "level": logging.get("Level", "OFF"),
        "includeExecutionData": bool(logging.get("IncludeExecutionData", False)),
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
            for d in logging.get("Destinations", [])
        ],
    }


@contextmanager
def local_stepfunctions(
    runtime: LocalRuntime,
    clock: SimulatedClock | WallClock | None = None,
    scale: float = 0.0,
    seed: int | None = None,
) -> Iterator[StepFunctionsRunner]:
    """Patch moto's interpreter for in-process Lambdas, simulated time and Step Functions' error rules.

    Parameters
    ----------
    runtime
        The deployment whose functions the tasks call.
    clock
        The clock that waits park on: a discrete-event :class:`SimulatedClock` (a new one, starting now, by
        default) or a :class:`WallClock` (real time at a speed, for a server).
    scale
        Fraction of each simulated jump also spent in real time (:class:`SimulatedClock` only).
    seed
        Seeds the full-jitter draws of retry intervals (``None``: unseeded).
    """
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp, wait_function
    from moto.stepfunctions.parser.asl.parse import asl_parser

    clock = clock or SimulatedClock()
    by_arn = {runtime.dep.attributes[(lid, "Arn")]: lid for lid in runtime.dep.of_type("AWS::Serverless::Function")}
    # Executions started before this context (another deployment's, e.g. a launch moto ran by itself) may wake
    # up in it: they must not call this deployment's functions or take part in this clock. Their threads
    # existed already; every execution of this context runs on a thread made after this point.
    # Thread objects, not idents: an ident is reused once its thread ends, an object held here is not.
    stale = {t for t in threading.enumerate() if t is not threading.main_thread()}

    def guard() -> None:
        if threading.current_thread() in stale:
            raise RuntimeError("an execution from before local_stepfunctions started; it is not run here")
        if clock.closed:
            raise RuntimeError("local_stepfunctions has ended; the execution is not run further")

    def call(parameters: dict[str, Any]) -> dict[str, Any]:
        guard()
        name = parameters["FunctionName"]
        lid = by_arn.get(name) or by_arn.get(name.split(":$")[0])
        if lid is None:
            raise KeyError(f"no function of the template has ARN {name}")
        payload = parameters.get("Payload")
        event = json.loads(payload) if isinstance(payload, str | bytes) else (payload or {})
        try:
            with clock.busy():
                result = runtime.invoke(lid, event)
        except LambdaServiceError as exc:
            # The Invoke call itself failed: the lambda:invoke integration names the error Lambda.<code>.
            raise ClientError(
                {
                    "Error": {"Code": exc.code, "Message": str(exc)},
                    "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": uuid.uuid4().hex},
                },
                "Invoke",
            ) from exc
        except Exception as exc:  # noqa: BLE001 - Lambda reports any handler exception as a function error
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": {"errorType": type(exc).__name__, "errorMessage": str(exc)},
            }
        return {"StatusCode": 200, "Payload": json.loads(json.dumps(result, default=str))}

    def invoke_integration(parameters: dict, region: str, state_credentials: Any) -> dict:
        return call(parameters)

    def exec_lambda(env: Any, parameters: dict, region: str, account: str, credentials: Any) -> None:
        resp = call(parameters)
        if resp.get("FunctionError"):
            raise lambda_eval_utils.LambdaFunctionErrorException(
                resp["FunctionError"], json.dumps(resp["Payload"], separators=(",", ":"))
            )
        env.stack.append(resp)

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        guard()
        clock.sleep(wait_seconds)

    def timestamp_wait_seconds(self: Any, env: Any) -> int:
        self.string.eval(env=env)
        raw = env.stack.pop()
        target = self._from_timestamp_string(timestamp=raw)
        if target is None:
            raise timestamp.FailureEventException(self._create_failure_event(env, raw))
        # Rounded up: a wait for a timestamp never ends before it (the clock may stand between whole seconds).
        return max(0, math.ceil((target.replace(tzinfo=UTC) - clock.now()).total_seconds()))

    def match_errors(self: Any, env: Any) -> None:
        error = env.stack.pop()
        env.stack.append(error_matches([e.error_name for e in self.error_names], error.error_name))

    rng = random.Random(seed)  # noqa: S311 - retry jitter, not cryptography

    def full_jitter(self: Any, env: Any) -> None:
        if self.jitter_strategy == jitter_strategy_decl.JitterStrategy.FULL:
            env.stack.append(rng.uniform(0, env.stack.pop()))

    class _Sleeper:
        @staticmethod
        def sleep(seconds: float) -> None:
            guard()
            clock.sleep(seconds)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    # moto parses the whole definition with ANTLR (pure Python) for every execution: a journey costs about a
    # second of CPU before its first state. The parsed program holds no execution state (that lives in the
    # environment each execution makes), so one parse per definition is shared.
    parse = asl_parser.AmazonStateLanguageParser.parse
    parsed: dict[str, Any] = {}

    def cached_parse(definition: str) -> Any:
        if definition not in parsed:
            parsed[definition] = parse(definition)
        return parsed[definition]

    saved = {
        "parse": parse,
        "invoke": lambda_eval_utils._invoke_lambda_function,
        "exec": lambda_eval_utils.exec_lambda_function,
        "wait": wait_function.WaitFunction._wait_interval,
        "ts": timestamp.Timestamp._get_wait_seconds,
        "time": retrier_decl.time,
        "errors": error_equals_decl.ErrorEqualsDecl._eval_body,
        "jitter": jitter_strategy_decl.JitterStrategyDecl._eval_body,
    }
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(cached_parse)
    lambda_eval_utils._invoke_lambda_function = invoke_integration
    lambda_eval_utils.exec_lambda_function = exec_lambda
    wait_function.WaitFunction._wait_interval = wait_interval
    timestamp.Timestamp._get_wait_seconds = timestamp_wait_seconds
    retrier_decl.time = _Sleeper()
    error_equals_decl.ErrorEqualsDecl._eval_body = match_errors
    jitter_strategy_decl.JitterStrategyDecl._eval_body = full_jitter
    timeutil.set_clock(clock.now)
    clock.scale = scale
    clock.running = _running_executions(runtime)
    clock.start()
    try:
        yield StepFunctionsRunner(runtime, clock)
    finally:
        # Executions still open end here, so none of them wakes up later in another deployment's context.
        stop_running_executions(runtime.dep.region)
        clock.stop()
        clock.running = None
        asl_parser.AmazonStateLanguageParser.parse = staticmethod(saved["parse"])
        lambda_eval_utils._invoke_lambda_function = saved["invoke"]
        lambda_eval_utils.exec_lambda_function = saved["exec"]
        wait_function.WaitFunction._wait_interval = saved["wait"]
        timestamp.Timestamp._get_wait_seconds = saved["ts"]
        retrier_decl.time = saved["time"]
        error_equals_decl.ErrorEqualsDecl._eval_body = saved["errors"]
        jitter_strategy_decl.JitterStrategyDecl._eval_body = saved["jitter"]
        timeutil.set_clock(None)


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    return stepfunctions_parser_backends[DEFAULT_ACCOUNT_ID][region]


def _executions(backend: Any) -> Iterator[tuple[Any, str | None]]:
    """Every execution a moto Step Functions backend holds (in memory: cheap enough to poll), with its status
    (``None`` before its first state)."""
    for sm in list(backend.state_machines):
        for ex in list(sm.executions):
            status = getattr(ex, "exec_status", None)
            yield ex, getattr(status, "value", status)


def stop_running_executions(region: str) -> int:
    """Stop every execution moto still runs in ``region`` (the end of a local deployment); return how many."""
    stopped = 0
    for ex, status in _executions(_backend(region)):
        if status == "RUNNING":
            ex.stop(stop_date=datetime.now(UTC), error="Kairos.LocalShutdown", cause="the local runtime ended")
            stopped += 1
    return stopped


def _running_executions(runtime: LocalRuntime) -> Callable[[], int]:
    """Count the executions moto has not finished."""
    backend = _backend(runtime.dep.region)
    return lambda: sum(1 for _, status in _executions(backend) if status in (None, "RUNNING"))


class StepFunctionsRunner:
    """Start executions of the template's state machines and wait for them."""

    def __init__(self, runtime: LocalRuntime, clock: SimulatedClock | WallClock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.sfn = runtime.session.client("stepfunctions")

    def start(self, logical_id: str, payload: dict[str, Any], name: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "stateMachineArn": self.runtime.dep.physical[logical_id],
            "input": json.dumps(payload),
        }
        # moto names an unnamed execution "None", so a second one would collide: name it as AWS would.
        kwargs["name"] = name or uuid.uuid4().hex
        return self.sfn.start_execution(**kwargs)["executionArn"]

    def wait(self, execution_arn: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            desc = self.sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout_s} s")
            time.sleep(0.02)

    def run(
        self, logical_id: str, payload: dict[str, Any], name: str | None = None, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Start an execution and return its description once it has ended."""
        return self.wait(self.start(logical_id, payload, name), timeout_s)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return self.sfn.get_execution_history(executionArn=execution_arn)["events"]
