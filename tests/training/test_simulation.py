"""The simulated population: real rhythms, local time across daylight saving, a response model that rewards timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from kairos.customers.schemas import CustomerProfileIn, EventBatch
from kairos_local.simulation import (
    SimCustomer,
    build_population,
    expected_open_probability,
    history_events,
    respond,
    true_best_hour,
)


def test_population_is_deterministic_valid_and_drawn_from_real_rhythms():
    a, b = build_population(40, seed=3), build_population(40, seed=3)
    assert [c.customer_id for c in a] == [c.customer_id for c in b]
    assert all(np.array_equal(x.rhythm, y.rhythm) for x, y in zip(a, b, strict=True))
    for c in a:
        assert c.rhythm.shape == (168,) and abs(c.rhythm.sum() - 1) < 1e-9 and (c.rhythm > 0).all()
        CustomerProfileIn.model_validate({**c.profile, "timezone": c.timezone})
        assert c.profile["consent"]["email"] and c.products
    # a wholesaler's week: the real invoices put little weight on Sunday nights
    mean = np.mean([c.rhythm for c in a], axis=0)
    assert mean[9 + 24 * 1] > 5 * mean[3 + 24 * 6]
    assert len({c.timezone for c in build_population(200, seed=3)}) == 5


def one_hour_customer(tz: str, how: int) -> SimCustomer:
    rhythm = np.full(168, 1e-9)
    rhythm[how] = 1.0
    rhythm /= rhythm.sum()
    return SimCustomer("x1", tz, {}, rhythm, 5.0, {"email": 0.5}, ["85123A"], {"85123A": 2.55})


def test_history_is_in_local_time_across_a_daylight_saving_change():
    c = one_hour_customer("America/New_York", 2 * 24 + 10)  # Wednesdays 10:00 local
    start, end = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)  # DST starts 8 March
    events = history_events([c], start, end, seed=1)
    assert events == history_events([c], start, end, seed=1)
    EventBatch.model_validate({"events": events[:500]})
    sessions = [datetime.fromisoformat(e["timestamp"]) for e in events if e["type"] == "session"]
    assert len(sessions) > 20
    assert all(start <= t < end for t in sessions)
    local = [t.astimezone(ZoneInfo("America/New_York")) for t in sessions]
    assert {(t.weekday(), t.hour) for t in local} == {(2, 10)}
    assert {t.utcoffset() for t in local} == {timedelta(hours=-5), timedelta(hours=-4)}  # both sides of DST


def test_customers_open_more_at_their_best_hour():
    (c,) = build_population(1, seed=5)
    best = true_best_hour(c)
    worst = int(np.argmin(c.near))
    assert expected_open_probability(c, "email", best) > 2.5 * expected_open_probability(c, "email", worst)
    tz = ZoneInfo(c.timezone)
    monday = datetime(2026, 3, 2, tzinfo=tz)

    def at(how):
        return (monday + timedelta(hours=how)).astimezone(UTC)

    opens_best = sum(bool(respond(c, f"m{i}", "email", at(best), seed=1)) for i in range(600))
    opens_worst = sum(bool(respond(c, f"m{i}", "email", at(worst), seed=1)) for i in range(600))
    assert opens_best > 2 * opens_worst
    answer = next(r for i in range(100) if (r := respond(c, f"k{i}", "email", at(best), seed=2)))
    EventBatch.model_validate({"events": answer})
    assert answer[0]["type"] == "message_open" and datetime.fromisoformat(answer[0]["timestamp"]) > at(best)
    assert respond(c, "k0", "email", at(best), seed=2) == respond(c, "k0", "email", at(best), seed=2)
