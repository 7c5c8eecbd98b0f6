"""Schedule expressions and the triggers loop of the local server, on fakes (no moto, no threads)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from kairos_local.scheduler import At, Cron, LocalTriggers, Rate, parse_schedule, scheduled_targets
from kairos_local.template import Deployment, load_template

if TYPE_CHECKING:
    from collections.abc import Iterator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def deployment(**parameters: str) -> Deployment:
    """The real template plus a test-only tick function, resolved against default parameters."""
    tpl = load_template()
    tpl["Resources"]["TickFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": "tests/data/functions/",
            "Handler": "flaky.lambda_handler",
            "Events": {"Every": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}},
        },
    }
    params = {k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()} | parameters
    dep = Deployment(prefix="kairos", template=tpl, region="eu-west-1", parameters=params)
    dep.physical["ScoreAllStateMachine"] = "arn:aws:states:eu-west-1:123456789012:stateMachine:kairos-score-all"
    return dep


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(1 minute)", T0, T0 + timedelta(minutes=1)),
        ("rate(5 minutes)", T0 + timedelta(minutes=7), T0 + timedelta(minutes=10)),
        ("rate(2 hours)", T0 + timedelta(hours=2), T0 + timedelta(hours=4)),
        ("rate(1 day)", T0 - timedelta(days=3), T0 + timedelta(days=1)),
    ],
)
def test_parse_schedule_rate_counts_periods_from_its_origin(expression, after, expected):
    # GIVEN a rate created at T0
    schedule = parse_schedule(expression, T0)
    # WHEN asked for the firing after a time
    # THEN it is the next whole period since T0
    assert isinstance(schedule, Rate)
    assert schedule.next_after(after) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # the template's nightly scoring
        ("cron(0 2 * * ? *)", T0, datetime(2026, 3, 3, 2, 0, tzinfo=UTC)),
        ("cron(0 2 * * ? *)", datetime(2026, 3, 3, 1, 59, 30, tzinfo=UTC), datetime(2026, 3, 3, 2, 0, tzinfo=UTC)),
        ("cron(0 2 * * ? *)", datetime(2026, 3, 3, 2, 0, tzinfo=UTC), datetime(2026, 3, 4, 2, 0, tzinfo=UTC)),
        # steps, lists and ranges
        ("cron(0/15 * * * ? *)", T0 + timedelta(minutes=1), T0 + timedelta(minutes=15)),
        ("cron(10,40 8-10 * * ? *)", T0 + timedelta(minutes=41), T0 + timedelta(hours=1, minutes=10)),
        # weekdays by name: Friday 10:00 -> Monday 09:00
        ("cron(0 9 ? * MON-FRI *)", datetime(2026, 3, 6, 10, tzinfo=UTC), datetime(2026, 3, 9, 9, tzinfo=UTC)),
        # 1 is Sunday
        ("cron(30 6 ? * 1 *)", T0, datetime(2026, 3, 8, 6, 30, tzinfo=UTC)),
        # months by name, across a year
        ("cron(0 0 1 JAN ? *)", T0, datetime(2027, 1, 1, tzinfo=UTC)),
        # the last day of the month, the last Friday, the second Tuesday
        ("cron(0 12 L * ? *)", T0, datetime(2026, 3, 31, 12, tzinfo=UTC)),
        ("cron(0 12 ? * 6L *)", T0, datetime(2026, 3, 27, 12, tzinfo=UTC)),
        ("cron(0 12 ? * 3#2 *)", T0, datetime(2026, 3, 10, 12, tzinfo=UTC)),
        # a year that has passed never comes
        ("cron(0 12 * * ? 2025)", T0, None),
    ],
)
def test_parse_schedule_cron_finds_the_next_matching_minute(expression, after, expected):
    # GIVEN a cron expression (UTC)
    schedule = parse_schedule(expression, T0)
    # WHEN asked for the firing after a time
    # THEN it is the first minute every field matches, strictly later
    assert isinstance(schedule, Cron)
    assert schedule.next_after(after) == expected


def test_parse_schedule_cron_follows_its_time_zone_across_daylight_saving():
    # GIVEN 02:00 every night in Paris, where clocks go forward on 2026-03-29
    schedule = parse_schedule("cron(0 2 * * ? *)", T0, "Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    # WHEN the firings around the change are listed
    t, fired = datetime(2026, 3, 27, 12, tzinfo=UTC), []
    for _ in range(4):
        t = schedule.next_after(t)
        fired.append(t)
    # THEN they are 02:00 local before and after (01:00, then 00:00 UTC); the 02:00 that does not exist runs at 03:00
    assert [f.astimezone(paris).hour for f in fired] == [2, 3, 2, 2]
    assert fired[0] == datetime(2026, 3, 28, 1, tzinfo=UTC)
    assert fired[3] == datetime(2026, 3, 31, 0, tzinfo=UTC)


def test_parse_schedule_at_fires_once():
    # GIVEN a one-time schedule of EventBridge Scheduler, in New York time
    schedule = parse_schedule("at(2026-03-02T10:00:00)", T0, "America/New_York")
    # WHEN asked before and after it
    # THEN it fires once, at 10:00 New York time
    assert isinstance(schedule, At)
    assert schedule.next_after(T0) == datetime(2026, 3, 2, 15, tzinfo=UTC)
    assert schedule.next_after(datetime(2026, 3, 2, 15, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",  # EventBridge wants the singular for 1
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(10 seconds)",
        "cron(0 2 * * *)",  # five fields: the Unix form
        "cron(0 2 * * MON *)",  # neither day field is ?
        "cron(0 2 ? * ? *)",  # both are
        "cron(61 2 * * ? *)",
        "cron(0 2 * FOO ? *)",
        "cron(0 2 10-5 * ? *)",
        "every day",
    ],
)
def test_parse_schedule_refuses_what_eventbridge_refuses(expression):
    # GIVEN an expression EventBridge would not accept
    # WHEN it is parsed
    # THEN it is refused, naming it
    with pytest.raises(ValueError, match=r"\S"):
        parse_schedule(expression, T0)


def test_scheduled_targets_reads_every_schedule_of_the_template():
    # GIVEN the template with its nightly scoring and a test-only tick function
    dep = deployment()
    # WHEN its schedules are listed
    targets = {t.logical_id: t for t in scheduled_targets(dep, T0)}
    # THEN the state machine's ScheduleV2 resolves its !Ref and !Sub, and the function's Schedule is found
    nightly = targets["ScoreAllStateMachine"]
    assert (nightly.kind, nightly.event_name, nightly.event_type) == (
        "AWS::Serverless::StateMachine",
        "Nightly",
        "ScheduleV2",
    )
    assert nightly.input == '{"total_shards": 4}'
    assert nightly.expression.next_after(T0) == datetime(2026, 3, 3, 2, tzinfo=UTC)
    timer = targets["TickFunction"]
    assert timer.kind == "AWS::Serverless::Function" and timer.input is None
    assert timer.expression.next_after(T0) == T0 + timedelta(minutes=1)


def test_scheduled_targets_leaves_out_disabled_schedules_and_follows_parameters():
    # GIVEN a disabled timer and a scoring schedule set by parameter
    dep = deployment(ScoreSchedule="rate(6 hours)")
    dep.resources["TickFunction"]["Properties"]["Events"]["Every"]["Properties"]["State"] = "DISABLED"
    # WHEN the schedules are listed
    targets = scheduled_targets(dep, T0)
    # THEN the timer is not there, and the scoring is, at the parameter's rate
    by_id = {t.logical_id: t for t in targets}
    assert "TickFunction" not in by_id
    assert by_id["ScoreAllStateMachine"].expression == Rate(timedelta(hours=6), T0)


def test_scheduled_target_payload_is_the_input_else_an_eventbridge_scheduled_event():
    # GIVEN the timer (no Input) and the nightly scoring (an Input)
    dep = deployment()
    targets = {t.logical_id: t for t in scheduled_targets(dep, T0)}
    # WHEN their payloads are made for a firing at 09:01
    when = T0 + timedelta(minutes=1, microseconds=5)
    timer = targets["TickFunction"].payload(dep, when)
    nightly = targets["ScoreAllStateMachine"].payload(dep, when)
    # THEN the timer gets a scheduled event as EventBridge shapes it, the scoring its Input
    assert timer["detail-type"] == "Scheduled Event" and timer["source"] == "aws.events"
    assert timer["time"] == "2026-03-02T09:01:00Z" and timer["detail"] == {}
    assert timer["region"] == "eu-west-1"
    assert timer["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/kairos-TickFunctionEvery"]
    assert nightly == {"total_shards": 4}


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    @contextmanager
    def busy(self) -> Iterator[None]:
        yield


class FakeStepFunctions:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"executionArn": kwargs["name"]}


class FakeRuntime:
    """What LocalTriggers uses of LocalRuntime: the deployment, stream pumping, invoke and a session."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.pumps = 0
        self.invoked: list[tuple[str, dict[str, Any]]] = []
        self.sfn = FakeStepFunctions()
        self.session = self

    def client(self, service: str) -> FakeStepFunctions:
        assert service == "stepfunctions"
        return self.sfn

    def pump_streams(self) -> int:
        self.pumps += 1
        return 0

    def invoke(self, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        self.invoked.append((logical_id, event))
        return {}


def test_local_triggers_tick_pumps_streams_and_fires_what_is_due_once():
    # GIVEN the triggers of the template with a timer every minute and scoring every 6 hours, at T0
    runtime = FakeRuntime(deployment(ScoreSchedule="rate(6 hours)"))
    clock = FakeClock(T0)
    triggers = LocalTriggers(runtime, clock)  # type: ignore[arg-type]
    # WHEN a tick comes before anything is due
    triggers.tick()
    # THEN the streams are pumped and nothing fires
    assert runtime.pumps == 1 and runtime.invoked == [] and runtime.sfn.started == []
    # WHEN 90 minutes pass before the next tick (a fast clock)
    clock.t = T0 + timedelta(minutes=90)
    triggers.tick()
    # THEN the timer fires once, for its first missed minute, and is next due at the following minute
    ticks = [ev["time"] for lid, ev in runtime.invoked if lid == "TickFunction"]
    assert ticks == ["2026-03-02T09:01:00Z"]
    assert triggers.next_at[next(t for t in triggers.targets if t.logical_id == "TickFunction")] == T0 + timedelta(
        minutes=91
    )
    assert runtime.sfn.started == []
    # WHEN 6 hours have passed
    clock.t = T0 + timedelta(hours=6)
    triggers.tick()
    # THEN the scoring state machine gets an execution with the schedule's input
    (started,) = runtime.sfn.started
    assert started["stateMachineArn"] == runtime.dep.physical["ScoreAllStateMachine"]
    assert started["input"] == '{"total_shards": 4}' and started["name"].startswith("Nightly-")
    assert triggers.fired["TickFunction.Every"] == 2 and triggers.fired["ScoreAllStateMachine.Nightly"] == 1


def test_local_triggers_tick_goes_on_when_a_trigger_fails():
    # GIVEN a stream pump and a timer that both fail
    runtime = FakeRuntime(deployment())

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    runtime.pump_streams = broken  # type: ignore[method-assign]
    runtime.invoke = broken  # type: ignore[method-assign]
    clock = FakeClock(T0)
    triggers = LocalTriggers(runtime, clock)  # type: ignore[arg-type]
    # WHEN ticks come, a minute apart
    for minute in (1, 2):
        clock.t = T0 + timedelta(minutes=minute)
        triggers.tick()
    # THEN each is logged and the loop goes on: the timer was tried at every minute
    assert triggers.fired["TickFunction.Every"] == 2
