"""Races: another writer commits between our read and our transaction; nothing is lost or counted twice."""

from __future__ import annotations

from datetime import timedelta

from kairos.customers.adapters.dynamo import DynamoStore
from kairos.customers.ingest import ingest_events
from kairos.customers.profiles import put_profile
from kairos.customers.schemas import CustomerProfileIn
from tests.helpers import event, now, runtime_store

RETENTION, SKEW = timedelta(days=400), timedelta(minutes=5)


class RacingStore(DynamoStore):
    """Runs ``race()`` once, right after the first state read, like a concurrent Lambda would."""

    def __init__(self, *args, race, **kwargs):
        super().__init__(*args, **kwargs)
        self.race = race
        self.loads = 0

    def load_ingest_state(self, *args, **kwargs):
        state = super().load_ingest_state(*args, **kwargs)
        self.loads += 1
        if self.loads == 1:
            self.race()
        return state


def _store(runtime, cls=DynamoStore, **kw):
    return runtime_store(runtime, cls, **kw)


def test_ingest_events_concurrent_overlapping_batch_counts_once(runtime):
    # GIVEN two writers sending overlapping batches for one customer at the same time
    t = now().replace(minute=0) - timedelta(days=2)
    mine = [event(f"e{i}", type="session", ts=t + timedelta(minutes=25 * i)) for i in range(10)]
    theirs = mine[5:] + [event("x1", type="purchase", ts=t + timedelta(minutes=30))]
    plain = _store(runtime)
    racing = _store(runtime, RacingStore, race=lambda: ingest_events(theirs, plain, now(), RETENTION, SKEW))
    # WHEN ours reads, theirs commits, then ours tries to commit
    result = ingest_events(mine, racing, now(), RETENTION, SKEW)
    # THEN ours retried: their 5 are duplicates, ours stored once, moments counted once
    assert racing.loads >= 2
    assert (result.accepted, result.duplicates) == (5, 5)
    agg = plain.get_customer("c1").aggregates
    hours = {(t + timedelta(minutes=25 * i)).replace(minute=0) for i in range(10)}
    assert agg.engagement_moments == len(hours) == sum(agg.how_counts)
    assert agg.purchase_count == 1


def test_ingest_events_timezone_set_mid_batch_ends_in_local_buckets(runtime):
    # GIVEN a batch being ingested while the profile sets a time zone
    t = now().replace(minute=0) - timedelta(days=3)
    batch = [event(f"e{i}", type="message_open", ts=t + timedelta(hours=i)) for i in range(6)]
    plain = _store(runtime)
    ingest_events([event("first", type="session", ts=t - timedelta(hours=30))], plain, now(), RETENTION, SKEW)
    racing = _store(
        runtime,
        RacingStore,
        race=lambda: put_profile("c1", CustomerProfileIn(timezone="America/Los_Angeles"), plain, now()),
    )
    # WHEN the ingest commits after the profile change
    ingest_events(batch, racing, now(), RETENTION, SKEW)
    # THEN every moment is bucketed in Los Angeles time
    agg = plain.get_customer("c1").aggregates
    assert agg.timezone == "America/Los_Angeles"
    from kairos.core.timeutil import hour_of_week

    expected = [0] * 168
    for ts in [t - timedelta(hours=30)] + [t + timedelta(hours=i) for i in range(6)]:
        expected[hour_of_week(ts, "America/Los_Angeles")] += 1
    assert agg.how_counts == expected
