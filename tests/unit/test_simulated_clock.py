"""The discrete-event clock of the local Step Functions runner."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from kairos_local.stepfunctions import SimulatedClock

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_concurrent_sleepers_each_wake_at_their_own_time():
    # GIVEN a clock and three threads waiting 10 h, 5 h and 5 h + 1 s
    clock = SimulatedClock(T0, quiet_s=0.01)
    woke: dict[str, datetime] = {}

    def sleeper(name: str, hours: float) -> None:
        clock.sleep(hours * 3600)
        woke[name] = clock.now()

    threads = [threading.Thread(target=sleeper, args=a) for a in (("a", 10), ("b", 5), ("c", 5 + 1 / 3600))]
    clock.start()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=5)
    finally:
        clock.stop()
    # THEN each saw the time it asked for, not the sum of everybody's waits
    assert woke == {
        "a": T0 + timedelta(hours=10),
        "b": T0 + timedelta(hours=5),
        "c": T0 + timedelta(hours=5, seconds=1),
    }


def test_timer_runs_at_its_time_and_holds_the_clock_while_it_runs():
    # GIVEN a sleeper of 2 h and a timer at 1 h that itself waits 30 min
    clock = SimulatedClock(T0, quiet_s=0.01)
    seen: list[tuple[str, datetime]] = []

    def timer() -> None:
        seen.append(("timer", clock.now()))
        clock.sleep(1800)
        seen.append(("timer-after-wait", clock.now()))

    clock.call_at(T0 + timedelta(hours=1), timer)
    sleeper = threading.Thread(target=lambda: (clock.sleep(7200), seen.append(("sleeper", clock.now()))))
    clock.start()
    try:
        sleeper.start()
        sleeper.join(timeout=5)
    finally:
        clock.stop()
    # THEN events happen in simulated-time order
    assert seen == [
        ("timer", T0 + timedelta(hours=1)),
        ("timer-after-wait", T0 + timedelta(hours=1, minutes=30)),
        ("sleeper", T0 + timedelta(hours=2)),
    ]


def test_clock_does_not_jump_while_work_is_busy():
    clock = SimulatedClock(T0, quiet_s=0.01)
    done = threading.Event()

    def sleeper() -> None:
        clock.sleep(3600)
        done.set()

    clock.start()
    try:
        with clock.busy():
            threading.Thread(target=sleeper, daemon=True).start()
            assert not done.wait(0.2)
            assert clock.now() == T0
        assert done.wait(5)
    finally:
        clock.stop()
    assert clock.now() == T0 + timedelta(hours=1)
