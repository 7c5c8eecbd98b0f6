"""Send-time decisions: local time, daylight saving, quiet hours, window, exploration propensities."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from kairos.core.timeutil import zone
from kairos.models.timing import QuietHours, candidate_hours, decide, local_hour_of_week, stable_unit

QUIET = QuietHours(time(21), time(8))


def _scores(best_how: int) -> list[float]:
    s = [1.0] * 168
    s[best_how] = 50.0
    return s


def test_candidate_hours_spring_forward_day_has_23_hours():
    # GIVEN London on 2026-03-29, when 01:00 local jumps to 02:00
    now = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 23:30 GMT
    # WHEN listing one day of hours
    cands = candidate_hours(now, "Europe/London", now + timedelta(hours=25), None)
    local_hours = [c.astimezone(zone("Europe/London")).hour for c in cands]
    # THEN 01:00 never appears and no instant repeats
    assert 1 not in local_hours[:24]
    assert len(set(cands)) == len(cands)


def test_candidate_hours_fall_back_day_repeated_hour_once():
    # GIVEN London on 2026-10-25, when 01:00-02:00 happens twice
    now = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 00:00 BST
    cands = candidate_hours(now, "Europe/London", now + timedelta(hours=25), None)
    local = [c.astimezone(zone("Europe/London")).replace(tzinfo=None) for c in cands]
    # THEN each local wall hour appears once
    assert len(local) == len(set(local))


def test_decide_optimized_next_best_hour_in_customer_zone_outside_quiet_hours():
    # GIVEN a Tokyo customer whose best hour is Wednesday 09:00 local, and quiet hours 21-08
    now = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # Monday 09:00 in Tokyo
    best = 2 * 24 + 9
    # WHEN deciding
    d = decide(
        mode="optimized",
        now=now,
        tz="Asia/Tokyo",
        window_end=now + timedelta(days=7),
        hour_scores=_scores(best),
        quiet=QUIET,
        seed=("camp", "c1"),
    )
    # THEN it is Wednesday 09:00 Tokyo time, chosen with probability 1
    assert d.send_at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert d.hour_of_week == best and d.policy == "optimized" and d.probability == 1.0


def test_decide_best_hour_in_quiet_hours_takes_best_allowed_hour():
    now = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    scores = _scores(23)  # Monday 23:00 local: quiet
    scores[10] = 20.0
    d = decide(mode="optimized", now=now, tz="UTC", window_end=now + timedelta(days=7), hour_scores=scores, quiet=QUIET)
    assert d.hour_of_week == 10
    assert all(not QUIET.contains(c) for c in candidate_hours(now, "UTC", now + timedelta(days=7), QUIET))


def test_decide_window_without_allowed_hours_is_none():
    now = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    assert (
        decide(mode="immediate", now=now, tz="UTC", window_end=now + timedelta(hours=5), hour_scores=None, quiet=QUIET)
        is None
    )


def test_decide_immediate_waits_for_quiet_hours_to_end():
    now = datetime(2026, 11, 23, 22, 10, tzinfo=UTC)
    d = decide(mode="immediate", now=now, tz="UTC", window_end=now + timedelta(days=2), hour_scores=None, quiet=QUIET)
    assert d.send_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_decide_fixed_local_time_is_daylight_saving_safe():
    # GIVEN a fixed 10:30 local send in New York across the November DST change
    now = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # Saturday 12:00 EDT, after 10:30
    d = decide(
        mode="fixed",
        now=now,
        tz="America/New_York",
        window_end=now + timedelta(days=3),
        hour_scores=None,
        fixed_local=time(10, 30),
    )
    # THEN Sunday 10:30 EST (UTC-5), the day the clocks went back
    assert d.send_at == datetime(2026, 11, 1, 15, 30, tzinfo=UTC)


def test_decide_exploration_is_deterministic_and_logs_propensity():
    now = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    kw = {
        "mode": "optimized",
        "now": now,
        "tz": "UTC",
        "window_end": now + timedelta(days=7),
        "hour_scores": _scores(40),
        "explore_share": 0.2,
    }
    decisions = [decide(**kw, seed=("camp", f"c{i}")) for i in range(400)]
    again = [decide(**kw, seed=("camp", f"c{i}")) for i in range(400)]
    assert decisions == again
    explored = [d for d in decisions if d.policy == "explore"]
    assert 40 < len(explored) < 130  # about 20 %
    n = decisions[0].candidates
    for d in decisions:
        if d.hour_of_week == 40 and d.send_at == decisions[0].send_at:
            assert abs(d.probability - (0.8 + 0.2 / n)) < 1e-6
        else:
            assert abs(d.probability - 0.2 / n) < 1e-6


def test_stable_unit_is_uniform_enough_for_control_groups():
    draws = [stable_unit("camp", f"c{i}") for i in range(5000)]
    share = sum(d < 0.1 for d in draws) / len(draws)
    assert 0.08 < share < 0.12
    assert local_hour_of_week(datetime(2026, 11, 23, 0, tzinfo=UTC), "UTC") == 0


def test_optimized_send_looks_for_the_best_hour_within_the_send_window():
    from kairos.core.timeutil import utc_iso
    from kairos.customers.domain import CustomerRecord
    from kairos.journeys.campaign_domain import CampaignIn
    from kairos.journeys.campaigns import campaign_journey
    from kairos.journeys.domain import Journey
    from kairos.journeys.runner import StepDeps, first_nodes
    from tests.fakes import (
        InMemoryCustomerStore,
        InMemoryJourneyStore,
        InMemoryMessageLog,
        InMemorySegmentStore,
        RecordingTaskSink,
    )

    now = datetime(2026, 3, 2, 6, tzinfo=UTC)  # Monday 06:00 UTC
    scores = [0.001] * 168
    scores[3 * 24 + 10] = 0.5  # Thursday 10:00 is this customer's best hour by far
    scores[0 * 24 + 15] = 0.1  # Monday 15:00 is the best of the first day
    record = CustomerRecord(
        "c1",
        profile={"timezone": "UTC", "contact": {"email": "a@example.com"}, "consent": {"email": True}},
        recommendation={"hour_scores": scores, "model_version": "m"},
    )

    def plan(within: int):
        campaign = CampaignIn.model_validate(
            {
                "name": "n",
                "audience": {"filters": []},
                "messages": {"email": {"subject": "s", "text": "t"}},
                "channels": ["email"],
                "expires_at": (now + timedelta(days=6)).isoformat(),
                "control_share": 0,
                "send_time": {"mode": "optimized", "explore_share": 0, "within_hours": within},
            }
        )
        # The campaign's journey decides the hour as the customer enters (no message is sent there).
        journey = Journey("camp", "active", 1, campaign_journey(campaign, now), utc_iso(now), utc_iso(now))
        path = {
            "customer_id": "c1",
            "key": "camp#r",
            "journey_id": "camp",
            "entry_id": "r",
            "entered_at": utc_iso(now),
            "node": journey.definition.start,
            "node_at": utc_iso(now),
            "seq": 0,
            "status": "waiting",
        }
        deps = StepDeps(
            InMemoryCustomerStore(),
            InMemoryJourneyStore(),
            InMemorySegmentStore(),
            InMemoryMessageLog(),
            {},
            RecordingTaskSink(),
        )
        first_nodes(journey, path, record, deps, now)
        assert path["wake_at"] == path["decisions"]["best_hour"]["send_at"]
        return path["decisions"]["best_hour"]

    assert plan(24)["hour_of_week"] == 15  # the default: the best hour of the next 24 hours
    assert plan(168)["hour_of_week"] == 3 * 24 + 10  # a week's window waits for Thursday
