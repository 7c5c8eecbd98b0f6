"""Insights over the live store: cohorts by a profile attribute, forecasts of an audience, the global control
group (the API's side of ``insights``).

An API request reads a bounded number of customers (:class:`~kairos.audiences.sampling.CustomerSample`): every
customer of a small store, a sample spread over a large one, the answer saying which. What the event archive
answers for every customer (cohorts by first purchase month, the whole base's forecast, RFM thresholds) runs as a
query instead (:mod:`kairos.insights.analytics`); RFM groups are kept by each scoring run
(``kairos.models.scoring``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.audiences.domain import Filter, SegmentIn
from kairos.audiences.matching import CustomerHistory, matches, needs_history
from kairos.audiences.sampling import SAMPLE_LIMIT, CustomerSample
from kairos.audiences.segments import every_item
from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.insights import measures as insights
from kairos.journeys.campaigns import campaign_results, list_campaigns
from kairos.journeys.domain import JourneyIn
from kairos.journeys.results import outcome_summary, with_uplift
from kairos.models.timing import in_global_control

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from kairos.audiences.ports import SegmentStore
    from kairos.customers.ports import CustomerStore
    from kairos.insights.domain import ForecastIn
    from kairos.insights.ports import InsightStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog

PAST_CAMPAIGNS = 5
# What check_cohorts accepts as ``by``, for the OpenAPI document (`[\s\S]`: an attribute name may hold any character).
COHORT_BY_PATTERN = r"^(first_purchase_month|attributes\.[\s\S]+)$"


def check_cohorts(by: str, metric: str) -> None:
    """Raise :class:`InvalidInputError` naming ``by`` or ``metric`` when the API cannot group by them."""
    if by != insights.FIRST_PURCHASE_MONTH and not (by.startswith("attributes.") and len(by) > len("attributes.")):
        raise InvalidInputError("by", "first_purchase_month or attributes.<name>")
    if metric not in insights.COHORT_METRICS:
        raise InvalidInputError("metric", f"one of {', '.join(insights.COHORT_METRICS)}")


def cohorts(
    customers: CustomerStore,
    by: str,
    metric: str,
    max_periods: int = 24,
    now: datetime | None = None,
    limit: int = SAMPLE_LIMIT,
) -> dict[str, Any]:
    """The cohort matrix of the customers with a purchase (``kairos.insights.measures.cohort_matrix``) among at
    most ``limit`` read: a sample of a larger store (``sampled``)."""
    check_cohorts(by, metric)
    read = CustomerSample(customers, limit)

    def rows() -> Iterator[tuple[Any, Any]]:
        for record in read:
            yield record.aggregates, record.attributes

    as_of = now.date() if now is not None else None
    matrix = insights.cohort_matrix(rows(), by, metric, max_periods, as_of)
    return {
        **matrix,
        "customers": read.read,
        "sampled": read.sampled,
        "sample_size": read.read if read.sampled else None,
    }


def audience_filters(body: ForecastIn, segments: SegmentStore, journeys: JourneyStore | None) -> list[Filter]:
    """The filters of the forecast's audience: given, a saved segment's, or a journey's entry segment's."""
    name = body.segment
    if body.journey_id is not None:
        if journeys is None:
            raise InvalidInputError("journey_id", "journeys are not available here")
        definition = JourneyIn.model_validate(journeys.get_journey(body.journey_id)["definition"])
        name = definition.entry.segment
        if not name:
            raise InvalidInputError("journey_id", "the journey enters on events, not on a segment: give filters")
    if name:
        try:
            doc = segments.get_segment(name)
        except NotFoundError as exc:
            raise InvalidInputError("segment", f"no segment '{name}'") from exc
        return SegmentIn.model_validate({k: v for k, v in doc.items() if k != "updated_at"}).filters
    return list(body.filters)


def forecast_audience(
    body: ForecastIn,
    customers: CustomerStore,
    segments: SegmentStore,
    now: datetime,
    journeys: JourneyStore | None = None,
    messages: MessageLog | None = None,
    limit: int = SAMPLE_LIMIT,
) -> dict[str, Any]:
    """Pessimistic, neutral and optimistic conversions and revenue of the audience over the period.

    Comparable periods are the same dates in earlier years and the periods just before now
    (``kairos.insights.measures.forecast``); finished campaigns to the same segment count too, scaled to the
    audience (the latest few, when the journeys and the message log are given). At most ``limit`` customers
    are read: on a larger store the rates are a sample's and the audience is scaled to the store (``sampled``).
    """
    filters = audience_filters(body, segments, journeys)
    history = CustomerHistory(customers, messages) if needs_history(filters) else None
    read = CustomerSample(customers, limit)
    aggs = [r.aggregates for r in read if matches(r, filters, now, history)]
    past = []
    segment = body.segment
    if segment and messages is not None and journeys is not None:
        done = [
            c
            for c in every_item(lambda n, t: list_campaigns(journeys, n, t, now))
            if c.get("status") == "completed"
            and (c.get("definition") or {}).get("audience", {}).get("segment") == segment
        ]
        for c in sorted(done, key=lambda d: d.get("created_at", ""), reverse=True)[:PAST_CAMPAIGNS]:
            res = campaign_results(c["campaign_id"], journeys, messages, customers, now)
            t = res["treatment"]
            past.append({"campaign_id": c["campaign_id"], **{k: t[k] for k in ("customers", "revenue")}})
            past[-1]["conversions"] = t["converted"]
    out = insights.forecast(
        aggs, body.start, body.end, now, past, body.years, body.previous_periods, read.estimate(len(aggs))
    )
    return {**out, "sampled": read.sampled, "sample_size": read.read if read.sampled else None}


def rfm_report(insight_store: InsightStore) -> dict[str, Any] | None:
    """The latest scoring run's RFM: thresholds, counts and revenue by group, the R x F grid and movement
    since the previous run (``None`` before any run computed it)."""
    runs = insight_store.query(insights.RFM_KIND, "run#")
    if not runs:
        return None
    key, thresholds = runs[-1]
    as_of = key.removeprefix("run#")
    parts = insight_store.query(insights.RFM_KIND, f"part#{as_of}#")
    summary = insights.RfmSummary()
    for _, doc in parts:
        summary = summary.merge(insights.RfmSummary.from_dict(doc))
    view = summary.view()
    if not parts:
        # The run's RFM pass set the cut points, and no scoring shard has grouped anybody yet: say so rather than
        # show every group empty beside the purchasers the cut points were computed from.
        return {
            "as_of": as_of,
            "thresholds": thresholds,
            "parts": 0,
            **view,
            "status": "thresholds_only",
            "note": "the cut points are set; customers are grouped when the run's scoring shards finish",
        }
    return {"as_of": as_of, "thresholds": thresholds, "parts": len(parts), **view, "status": "complete"}


def global_control_report(
    customers: CustomerStore, now: datetime, days: int, share: float, limit: int = SAMPLE_LIMIT
) -> dict[str, Any]:
    """What everything Kairos sent brought: customers outside the global control group against those in it.

    Conversions (a purchase) and revenue over the last ``days`` days, per customer, with the uplift and its
    95% interval, and the incremental revenue: the uplift in revenue per customer times the customers reached.
    At most ``limit`` customers are read: on a larger store the groups are a sample's, and the customers reached
    are scaled to the store (``sampled``).
    """
    start = (now - timedelta(days=days)).date()
    end = now.date() + timedelta(days=1)
    groups: dict[bool, tuple[list[bool], list[float]]] = {True: ([], []), False: ([], [])}
    read = CustomerSample(customers, limit)
    for record in read:
        outcome = insights.period_outcome([record.aggregates], start, end)
        flags, revenue = groups[in_global_control(record.customer_id, share)]
        flags.append(outcome["conversions"] > 0)
        revenue.append(outcome["revenue"])
    measured = with_uplift(outcome_summary(*groups[False]), outcome_summary(*groups[True]))
    rpc = measured["uplift"]["revenue_per_customer"]
    reached = read.estimate(measured["treatment"]["customers"])
    incremental = None
    if rpc is not None:
        interval = rpc["interval"]
        incremental = {
            "revenue": round(rpc["difference"] * reached, 2),
            "interval": None if interval is None else [round(x * reached, 2) for x in interval],
        }
    return {
        "share": share,
        "days": days,
        "start": start.isoformat(),
        "end": end.isoformat(),
        **measured,
        "incremental_revenue": incremental,
        "sampled": read.sampled,
        "sample_size": read.read if read.sampled else None,
    }
