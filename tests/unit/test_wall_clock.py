"""The wall clock of the local server: real time at a speed, with the interface of the simulated clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kairos_local.stepfunctions import WallClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_wall_clock_runs_at_its_speed():
    # GIVEN a clock at an hour per second
    clock = WallClock(speed=3600, start=T0)
    # WHEN a tenth of a real second passes
    time.sleep(0.1)
    # THEN about six simulated minutes have (scheduling may add a little, never take away)
    elapsed = (clock.now() - T0).total_seconds()
    assert 360 <= elapsed < 3600


def test_wall_clock_sleep_takes_the_scaled_real_time_and_ends_at_its_target():
    # GIVEN a clock at ten hours per second
    clock = WallClock(speed=36000, start=T0)
    # WHEN a thread sleeps an hour of it
    began = time.monotonic()
    clock.sleep(3600)
    took = time.monotonic() - began
    # THEN it took about a tenth of a second, and never woke before its time
    assert 0.09 <= took < 2
    assert clock.now() >= T0 + timedelta(hours=1)


def test_wall_clock_call_at_runs_the_timer_on_its_own_thread_at_its_time():
    # GIVEN a started clock at an hour per second and a timer half an hour ahead
    clock = WallClock(speed=3600, start=T0)
    seen: list[tuple[datetime, str]] = []
    done = threading.Event()

    def timer() -> None:
        seen.append((clock.now(), threading.current_thread().name))
        done.set()

    clock.start()
    try:
        clock.call_at(T0 + timedelta(minutes=30), timer)
        # WHEN the clock passes that time
        assert done.wait(timeout=5)
    finally:
        clock.stop()
    # THEN the timer ran then, not on the caller's thread
    ((when, thread),) = seen
    assert when >= T0 + timedelta(minutes=30)
    assert thread != threading.current_thread().name


def test_wall_clock_stop_releases_every_sleeper_and_later_sleeps():
    # GIVEN a real-time clock and a thread sleeping a day on it
    clock = WallClock(speed=1, start=T0)
    clock.start()
    sleeper = threading.Thread(target=clock.sleep, args=(86400,), daemon=True)
    sleeper.start()
    # WHEN the clock stops
    clock.stop()
    sleeper.join(timeout=5)
    # THEN the sleeper is released at once, and a later sleep does not wait
    assert not sleeper.is_alive()
    assert clock.closed
    began = time.monotonic()
    clock.sleep(86400)
    assert time.monotonic() - began < 1


def test_wall_clock_advance_wakes_a_sleeper_whose_time_has_come():
    # GIVEN a real-time clock and a thread sleeping an hour on it
    clock = WallClock(speed=1, start=T0)
    sleeper = threading.Thread(target=clock.sleep, args=(3600,), daemon=True)
    sleeper.start()
    time.sleep(0.05)
    # WHEN the clock is moved two hours forward
    clock.advance(7200)
    sleeper.join(timeout=5)
    # THEN the sleeper wakes
    assert not sleeper.is_alive()
    assert clock.now() >= T0 + timedelta(hours=2)


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_wall_clock_refuses_a_speed_that_is_not_positive(speed):
    # GIVEN a speed that is not a positive number
    # WHEN a clock is made with it
    # THEN it is refused
    with pytest.raises(ValueError, match="speed"):
        WallClock(speed=speed)


def test_wall_clock_stands_at_a_hold_until_it_is_released_then_goes_on_from_there():
    # GIVEN a clock at an hour per second holding at one simulated minute
    clock = WallClock(speed=3600, start=T0)
    hold = clock.hold(T0 + timedelta(minutes=1))
    try:
        # WHEN a real second passes (an hour at that speed)
        time.sleep(1.0)
        # THEN the clock stands at the hold, and says so
        assert clock.now() == T0 + timedelta(minutes=1)
        assert clock.state()["advancing"] is False and clock.state()["next_due"] == T0 + timedelta(minutes=1)
        # WHEN the hold is released
        hold.release()
        time.sleep(0.05)
        # THEN it goes on from the hold, not from where real time has got to
        assert T0 + timedelta(minutes=1) < clock.now() < T0 + timedelta(minutes=30)
    finally:
        clock.stop()


def test_wall_clock_stands_at_a_wake_up_while_the_execution_it_woke_works():
    # GIVEN a clock at an hour per second and one execution, parked until ten simulated minutes
    clock = WallClock(speed=3600, start=T0)
    executions = [1]
    clock.running = lambda: len(executions)
    clock.start()
    seen: list[datetime] = []

    wake_at = T0 + timedelta(minutes=10)

    def execution() -> None:
        clock.sleep_until(wake_at)
        time.sleep(0.5)  # half a real second of work after the wait: half an hour if the clock went on
        seen.append(clock.now())
        executions.clear()

    try:
        worker = threading.Thread(target=execution, daemon=True)
        worker.start()
        worker.join(timeout=10)
        # WHEN the execution has woken, worked and ended
        # THEN it saw the time it waited for, and the clock goes on after it
        assert seen == [wake_at]
        time.sleep(0.05)
        assert clock.now() > wake_at
    finally:
        clock.stop()
