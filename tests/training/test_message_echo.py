"""The echo of past send times: opens come at the hour a message was sent, so a model that counted them as the
customer's own hours would learn its own past choices. Here every customer engages on their own at 19:00 and
was messaged at 10:00, more often than they came on their own, and opened every message: the retrained model
must still send at their evening hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kairos.customers.schemas import Event
from kairos.models.serving import CustomerInput
from training.fit import TrainConfig, fit
from training.history import Folder, History
from training.io import Profile
from training.ope import model_decisions

LONDON = ZoneInfo("Europe/London")
FAST = TrainConfig(time_rounds=30, product_rounds=10, max_snapshots=6, product_snapshots=1, threads=1)
OWN, SENT = 19, 10  # the customers' own hour, and the hour every message went at
END = datetime(2026, 6, 1, tzinfo=UTC)


def _log(customers: int = 40, weeks: int = 30, seed: int = 5) -> tuple[list[Event], list[dict]]:
    """Sessions with a purchase on their own at 19:00 (about one a week), and for the last 14 weeks three messages
    a week at 10:00, each opened 20 minutes later; the logged first sends of the last week, planned a day ahead."""
    rng = np.random.default_rng(seed)
    events, rows = [], []
    start = (END - timedelta(weeks=weeks)).astimezone(LONDON).replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(customers):
        cid = f"c{i}"
        for day in range(weeks * 7):
            local = start + timedelta(days=day)
            if rng.random() < 1 / 7:
                at = local.replace(hour=OWN, minute=int(rng.integers(0, 50)))
                events.append(Event(event_id=f"{cid}-s{day}", customer_id=cid, type="session", timestamp=at))
                product = f"P{int(rng.integers(0, 5))}"
                buy = {"product_id": product, "quantity": 1, "amount": 10.0, "timestamp": at + timedelta(minutes=5)}
                events.append(Event(event_id=f"{cid}-p{day}", customer_id=cid, type="purchase", **buy))
            if day >= (weeks - 14) * 7 and local.weekday() in (0, 2, 4):
                sent = local.replace(hour=SENT, minute=0)
                mid = f"camp.{cid}.{day}"
                events.append(
                    Event(
                        event_id=f"{mid}:open",
                        customer_id=cid,
                        type="message_open",
                        timestamp=sent + timedelta(minutes=20),
                        channel="email",
                        message_id=mid,
                    )
                )
        plan = END - timedelta(days=1)
        rows.append(
            {
                "message_id": f"last.{cid}",
                "customer_id": cid,
                "timezone": "Europe/London",
                "features": {"window": [plan.isoformat(), (plan + timedelta(hours=72)).isoformat()]},
            }
        )
    return [e for e in events if e.timestamp < END - timedelta(days=1)], rows


@pytest.fixture(scope="module")
def retrained():
    events, rows = _log()
    profiles = {e.customer_id: Profile("Europe/London", {}) for e in events}
    history = History(events, profiles)
    return fit(history, END - timedelta(days=1), FAST), history, rows


def test_message_opens_are_not_counted_as_the_customers_own_hours(retrained):
    # GIVEN customers who opened 42 messages at 10:00 and came on their own about 30 times at 19:00
    _, history, _ = retrained
    aggs = Folder(history).advance(END)
    counts = np.array([a.how_counts for a in aggs.values()]).reshape(-1, 7, 24).sum(axis=(0, 1))
    # WHEN their aggregates are folded (the ingest API's fold) and their training labels read
    labels = history.window_how_counts(list(aggs), END - timedelta(weeks=30), END).reshape(-1, 7, 24).sum(axis=(0, 1))
    # THEN the opens are counted for their channel, not as hours of the customers' own, in both
    assert counts[SENT] == 0 and labels[SENT] == 0
    assert counts[OWN] == labels[OWN] == sum(a.engagement_moments for a in aggs.values()) > 0
    assert all(a.channel_engagements["email"] == 42 for a in aggs.values())


def test_the_retrained_decision_does_not_collapse_onto_the_hour_it_sent_at(retrained):
    # GIVEN the model retrained on that history and log
    model, history, rows = retrained
    aggs = Folder(history).advance(END - timedelta(days=1))
    # WHEN it recommends, and when it decides the logged sends again as they were decided (72 hours, no quiet hours)
    recs = model.recommend([CustomerInput(c, a) for c, a in aggs.items()], END - timedelta(days=1))
    decided = model_decisions(model, history, rows)
    # THEN it sends at the customers' own evening hour, not at the hour it sent at before
    assert {r.best_hour_of_week % 24 for r in recs} <= {OWN - 1, OWN, OWN + 1}
    assert len(decided) == len(rows)
    assert {h % 24 for h in decided.values()} <= {OWN - 1, OWN, OWN + 1}
