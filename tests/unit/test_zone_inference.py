"""Without a zone in the profile, Kairos counts each engagement at the local time its event carried and infers
the zone from those offsets; a zone given later re-buckets exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kairos.core.timeutil import hour_of_week
from kairos.customers.aggregates import rebucket
from kairos.customers.profiles import get_customer
from tests.unit.conftest import NOW, make_event

MSK = timezone(timedelta(hours=3))


def test_events_with_an_offset_are_counted_at_their_local_hour_and_name_a_fixed_zone(customers, ingest):
    # GIVEN a customer without a profile whose app sends times in UTC+03:00
    t = datetime(2026, 3, 2, 9, 30, tzinfo=MSK)  # Monday 09:30 local, 06:30 UTC
    ingest([make_event(f"s{i}", "c1", "session", ts=t - timedelta(days=i)) for i in range(3)])
    agg = customers.get_customer("c1").aggregates
    # THEN the moments sit at 09:00 local (Monday, Sunday, Saturday), not at 06:00 UTC
    assert [agg.how_counts[d * 24 + 9] for d in (0, 6, 5)] == [1, 1, 1] and sum(agg.how_counts) == 3
    view = get_customer("c1", customers, NOW)
    assert view.aggregates.timezone == "UTC+03:00" and view.aggregates.timezone_inferred is True


def test_two_offsets_of_one_daylight_saving_rule_name_the_zone(customers, ingest):
    winter = datetime(2026, 1, 12, 20, 0, tzinfo=timezone(timedelta(hours=1)))
    summer = datetime(2026, 2, 16, 20, 0, tzinfo=timezone(timedelta(hours=2)))
    ingest([make_event("w", "c1", "session", ts=winter), make_event("s", "c1", "session", ts=summer)], at=NOW)
    assert customers.get_customer("c1").aggregates.effective_timezone == "Europe/Paris"
    assert customers.get_customer("c1").timezone == "Europe/Paris"


def test_a_zone_given_later_rebuckets_exactly(customers, ingest, add_customer):
    t = datetime(2026, 3, 2, 9, 30, tzinfo=MSK)
    ingest([make_event(f"s{i}", "c1", "session", ts=t - timedelta(hours=5 * i)) for i in range(4)])
    before = customers.get_customer("c1").aggregates
    add_customer("c1", timezone="Asia/Tokyo")
    after = customers.get_customer("c1").aggregates
    assert after == rebucket(before, customers.engagement_moments("c1"), "Asia/Tokyo")
    assert after.timezone_source == "profile" and after.offset_counts == {}
    assert after.how_counts[hour_of_week(t, "Asia/Tokyo")] == 1


def test_a_profile_zone_given_first_is_used_from_the_first_event(customers, ingest, add_customer):
    add_customer("c1", timezone="UTC")
    t = datetime(2026, 3, 2, 9, 30, tzinfo=MSK)
    ingest([make_event("s0", "c1", "session", ts=t)])
    agg = customers.get_customer("c1").aggregates
    assert agg.timezone_source == "profile" and agg.how_counts[6] == 1  # 06:30 UTC, the profile's zone
