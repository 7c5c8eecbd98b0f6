"""The aggregates fold: order- and batching-independent, re-bucketing exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.customers.aggregates import CustomerAggregates, fold_events, rebucket
from kairos.customers.schemas import Event

BASE = datetime(2025, 3, 20, tzinfo=UTC)  # spans the 2025 European DST change on 30 March


def _events(draw_spec: list[tuple[int, str, int]]) -> list[Event]:
    return [
        Event(
            event_id=f"e{i}",
            customer_id="c",
            type=t,
            timestamp=BASE + timedelta(minutes=m),
            product_id=f"P{i % 4}",
            amount=1.5,
            quantity=1,
        )
        for i, (m, t, _) in enumerate(draw_spec)
    ]


spec = st.lists(
    st.tuples(
        st.integers(0, 60 * 24 * 20),
        st.sampled_from(["session", "purchase", "message_open", "cart_add", "cart_abandon"]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=80,
)


def _fold_in_batches(events: list[Event], sizes: list[int], tz: str | None = None) -> CustomerAggregates:
    # No zone: inferred from the events' offsets, as ingestion does before a profile gives one.
    start = CustomerAggregates() if tz is None else CustomerAggregates(timezone=tz, timezone_source="profile")
    agg, counted = start, set()
    i = 0
    while i < len(events):
        n = max(1, sizes[i % len(sizes)])
        agg, new = fold_events(agg, events[i : i + n], counted)
        counted |= new
        i += n
    return agg


@settings(max_examples=60, deadline=None)
@given(spec, st.lists(st.integers(1, 9), min_size=1, max_size=5), st.randoms())
def test_fold_events_any_order_and_batching_gives_same_aggregates(draw_spec, sizes, rnd):
    # GIVEN the same events in time order and shuffled into random batches
    events = _events(draw_spec)
    ordered = _fold_in_batches(sorted(events, key=lambda e: e.timestamp), [len(events)])
    shuffled = list(events)
    rnd.shuffle(shuffled)
    # WHEN folded
    batched = _fold_in_batches(shuffled, sizes)
    # THEN the aggregates are identical
    assert batched == ordered


@settings(max_examples=40, deadline=None)
@given(spec)
def test_rebucket_equals_folding_in_the_zone_from_the_start(draw_spec):
    # GIVEN events folded before a zone was known, then re-bucketed to Europe/London (across a DST change)
    events = _events(draw_spec)
    utc = _fold_in_batches(events, [len(events)])
    moments = sorted(
        {int(e.timestamp.timestamp()) // 3600 for e in events if e.type in ("session", "purchase", "message_open")}
    )
    # WHEN re-bucketed
    london = rebucket(utc, moments, "Europe/London")
    # THEN it is what folding in London time from the start gives
    assert london == _fold_in_batches(events, [len(events)], tz="Europe/London")


def test_fold_events_counts_one_moment_per_hour_and_keeps_purchase_memory():
    # GIVEN a 3-line invoice, a session 10 minutes later and a purchase the next day
    t = datetime(2025, 6, 2, 9, 15, tzinfo=UTC)  # a Monday
    evs = [
        Event(event_id=f"l{i}", customer_id="c", type="purchase", timestamp=t, product_id=f"P{i}", quantity=2, amount=3)
        for i in range(3)
    ]
    evs += [
        Event(event_id="s", customer_id="c", type="session", timestamp=t + timedelta(minutes=10)),
        Event(event_id="p2", customer_id="c", type="purchase", timestamp=t + timedelta(days=1), product_id="P0"),
    ]
    # WHEN folded
    agg, new = fold_events(CustomerAggregates(), evs, set())
    # THEN two moments, two purchases, P0 bought twice
    assert agg.engagement_moments == 2 and agg.purchase_count == 2
    assert agg.how_counts[9] == 1 and agg.how_counts[24 + 9] == 1
    assert agg.product_purchases["P0"][0] == 2 and agg.product_purchases["P1"][0] == 1
    assert agg.monetary_total == 9.0
    assert len(new) == 4  # two engagement moments and two purchase moments
    assert CustomerAggregates.from_dict(agg.to_dict()) == agg


def test_fold_events_already_counted_moment_is_not_counted_again():
    t = datetime(2025, 6, 2, 9, 15, tzinfo=UTC)
    ev = Event(event_id="x", customer_id="c", type="session", timestamp=t)
    agg, new = fold_events(CustomerAggregates(), [ev], {f"m#{int(t.timestamp()) // 3600}"})
    assert agg.engagement_moments == 0 and new == set()


def test_an_answer_to_a_message_is_engagement_but_not_a_moment_of_the_customers_own():
    # GIVEN a visit of the customer's own, then an open and a click of a message sent at 10:00 a week later
    t = datetime(2025, 6, 2, 19, 5, tzinfo=UTC)
    sent = t + timedelta(days=7, hours=-9)
    evs = [
        Event(event_id="v", customer_id="c", type="session", timestamp=t),
        Event(event_id="o", customer_id="c", type="message_open", timestamp=sent, channel="email", message_id="m1"),
        Event(event_id="k", customer_id="c", type="message_click", timestamp=sent, channel="email", message_id="m1"),
    ]
    # WHEN folded, in either order
    agg, _ = fold_events(CustomerAggregates(), evs, set())
    again, _ = fold_events(CustomerAggregates(), evs[::-1], set())
    # THEN the hour-of-week counts hold the visit only (the open's hour is the send's), the channel counts the answers
    assert agg.engagement_moments == 1 and sum(agg.how_counts) == 1 and agg.how_counts[19] == 1
    assert agg.channel_engagements == {"email": 2}
    # AND the latest engagement is the open: "days since the last engagement" counts from it
    assert agg.last_engaged_s == int(sent.timestamp()) and agg.last_engagement_h == int(t.timestamp()) // 3600
    assert again == agg and CustomerAggregates.from_dict(agg.to_dict()) == agg
