"""Per-customer aggregates: the scoring inputs, kept up to date by ingestion.

One fold, two callers: ``kairos.customers.ingest`` applies it to each accepted batch and stores the
result in DynamoDB, and ``training`` applies it to archived history up to a cut-off. The features
of a customer are a function of these aggregates only (``kairos.models.features``), so what a model was
trained on and what it is served are computed by the same code.

An *engagement moment* is one clock hour (UTC epoch hour) in which the customer engaged
(session, open, click or purchase), however many events it holds: a 20-line invoice is one
purchase moment. Moments are counted once even when their events arrive in separate batches,
because the store remembers which moments it has counted (``moment_key``).

An event that names a message (``message_id``: the message's opens and clicks, a purchase or session
it led to) is the answer to a send and makes no engagement moment (``makes_moment``): its hour is the
hour the policy chose plus the time to open, so counting it as the customer's own hour-of-week
preference would teach the send-time model its own past choices. Those answers are counted per channel
(``channel_engagements``) and learned, corrected for the policy's propensities, by the response model
from the message log (``training/response.py``).
"""

from __future__ import annotations

import bisect
import copy
import functools
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kairos.core.constants import ENGAGEMENT_TYPES, HOURS_PER_WEEK, MESSAGE_ENGAGEMENT, PRODUCT_TYPES
from kairos.core.timeutil import HOUR, epoch_hour, epoch_hour_of_week, offset_zone
from kairos.customers.loyalty_domain import LOYALTY_TYPES
from kairos.customers.loyalty_domain import apply as apply_points
from kairos.customers.subscription_domain import changes as subscription_changes

# Pairs of UTC offsets (minutes) that one zone's daylight saving produces, and a zone that keeps those rules.
DST_ZONES: dict[tuple[int, ...], str] = {
    (0, 60): "Europe/London",
    (60, 120): "Europe/Paris",
    (120, 180): "Europe/Helsinki",
    (-300, -240): "America/New_York",
    (-360, -300): "America/Chicago",
    (-420, -360): "America/Denver",
    (-480, -420): "America/Los_Angeles",
    (600, 660): "Australia/Sydney",
}


def zone_of_offsets(
    counts: Mapping[str, int] | Mapping[int, int],
    default: str = "UTC",
    spans: Mapping[str, Sequence[int]] | Mapping[int, Sequence[int]] | None = None,
) -> str:
    """The zone a customer's UTC offsets imply (offset in minutes -> engagement moments seen at it).

    Two offsets an hour apart that one zone's daylight saving produces (+01:00 and +02:00: Europe/Paris)
    name that zone. One offset alone names the daylight-saving zone that had it, and only it, all along its span
    (``spans``: offset -> first and last UTC epoch hour seen): -05:00 seen in winter only is America/New_York,
    in summer only America/Chicago; one seen across seasons, or that no such zone had, is a fixed zone
    (``UTC+03:00``). None: ``default``. Ingestion, training (labels, evaluation) and serving all place a customer
    without a profile zone here.
    """
    if not counts:
        return default
    ranked = sorted(((int(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[0][0]
    if len(ranked) > 1:
        pair = tuple(sorted((top, ranked[1][0])))
        if pair in DST_ZONES:
            return DST_ZONES[pair]
    span = {int(k): v for k, v in spans.items()}.get(top) if spans else None
    if span:
        # Whole days: the answer is cached, and a day more or less does not move a season.
        zone = _steady_zone(top, int(span[0]) // 24, int(span[-1]) // 24)
        if zone is not None:
            return zone
    return offset_zone(top)


@functools.lru_cache(maxsize=4096)
def _steady_zone(offset_minutes: int, first_day: int, last_day: int) -> str | None:
    """The daylight-saving zone whose UTC offset was ``offset_minutes`` on every day from ``first_day`` to
    ``last_day`` (days since 1970-01-01), if exactly one was."""
    if last_day - first_day > 366:
        return None
    days = range(first_day, last_day + 1, 7) if last_day > first_day else [first_day]
    found = [
        name
        for name in sorted(set(DST_ZONES.values()))
        if all(
            datetime.fromtimestamp((d * 24 + 12) * HOUR, UTC).astimezone(ZoneInfo(name)).utcoffset()
            == timedelta(minutes=offset_minutes)
            for d in (*days, last_day)
        )
    ]
    return found[0] if len(found) == 1 else None


def local_hour_of_week_at_offset(epoch_h: int, offset_minutes: int) -> int:
    """The hour of week (0 = Monday 00:00) of a UTC epoch hour on a clock ``offset_minutes`` ahead of UTC."""
    local_h = (epoch_h * HOUR + offset_minutes * 60) // HOUR
    # 1970-01-01 was a Thursday: epoch hour 0 is hour 72 of its week.
    return int((local_h + 72) % (7 * 24))


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kairos.customers.schemas import Event

RECENT_MOMENTS = 64
RECENT_PRODUCTS = 50
PRODUCT_MEMORY = 300
RECENT_ORDERS = 64
# Days with a purchase kept per customer (oldest forgotten first): beyond two years of daily buyers.
PURCHASE_DAYS = 800


def makes_moment(event_type: str, message_id: str | None) -> bool:
    """Whether an event makes an engagement moment: an engagement of the customer's own, not a message's answer."""
    return event_type in ENGAGEMENT_TYPES and not message_id


def moment_key(kind: str, epoch_h: int) -> str:
    """Key of a counted moment: ``m`` for engagement, ``p`` for purchase."""
    return f"{kind}#{epoch_h}"


@dataclass
class CustomerAggregates:
    """Everything the models need to know about one customer's past.

    Times are Unix seconds (UTC) or UTC epoch hours, so the record is JSON- and DynamoDB-friendly.
    """

    timezone: str = "UTC"
    # "profile": the zone was given; "inferred": no zone yet, each moment is counted at the local time its
    # event carried (its UTC offset), and ``offset_counts`` says which offsets those were.
    timezone_source: str = "inferred"
    offset_counts: dict[str, int] = field(default_factory=dict)
    # offset -> [first, last] UTC epoch hour a moment was seen at it: which season an offset was seen in
    offset_spans: dict[str, list[int]] = field(default_factory=dict)
    how_counts: list[int] = field(default_factory=lambda: [0] * HOURS_PER_WEEK)
    engagement_moments: int = 0
    recent_moments: list[int] = field(default_factory=list)
    purchase_count: int = 0
    monetary_total: float = 0.0
    first_purchase_s: int | None = None
    last_purchase_s: int | None = None
    event_counts: dict[str, int] = field(default_factory=dict)
    channel_engagements: dict[str, int] = field(default_factory=dict)
    # The latest event answering a message (an open, a click, a visit or purchase naming it), Unix seconds: it is
    # engagement, though not a moment of the customer's own choosing (see the module's docstring)
    last_answer_s: int | None = None
    # [product_id, event type, unix seconds, quantity], newest last
    recent_products: list[list[Any]] = field(default_factory=list)
    # product_id -> [purchase moments, last purchase unix seconds, units, first purchase unix seconds]; records
    # stored before the fourth number have three (their first purchase is unknown)
    product_purchases: dict[str, list[int]] = field(default_factory=dict)
    last_cart_abandon_amount: float | None = None
    last_cart_abandon_s: int | None = None
    # channel, "all", "topic:<name>" or "suppressed:<channel>" -> latest unsubscribe, unix seconds
    # (kairos.customers.subscription_domain says which event withdraws which key)
    unsubscribed: dict[str, int] = field(default_factory=dict)
    # channel, "all" or "topic:<name>" -> latest subscribe (the preference page, an SMS reply of START)
    subscribed: dict[str, int] = field(default_factory=dict)
    # UTC day "YYYY-MM-DD" -> [purchase moments, revenue]: cohorts, forecasts and conversion windows
    purchase_days: dict[str, list[float]] = field(default_factory=dict)
    # [UTC epoch hour, amount] of the most recent orders (an order = one purchase moment), oldest first
    orders: list[list[float]] = field(default_factory=list)
    # The funnel stage the latest event naming one put the customer in (properties.stage, e.g. an inbound
    # question's intent), since when (unix seconds), and the stage before it
    stage: str | None = None
    stage_at: int | None = None
    previous_stage: str | None = None
    # Loyalty points (kairos.customers.loyalty): [expires unix seconds (0: never), points left] by expiry, and totals
    points_lots: list[list[int]] = field(default_factory=list)
    points_earned: int = 0
    points_spent: int = 0
    points_expired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CustomerAggregates:
        if not data:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        agg = cls(**known)
        # DynamoDB gives Decimals back; the fold and the features work on int and float.
        agg.how_counts = [int(x) for x in agg.how_counts]
        agg.recent_moments = [int(x) for x in agg.recent_moments]
        agg.engagement_moments = int(agg.engagement_moments)
        agg.purchase_count = int(agg.purchase_count)
        agg.monetary_total = float(agg.monetary_total)
        agg.first_purchase_s = _opt_int(agg.first_purchase_s)
        agg.last_purchase_s = _opt_int(agg.last_purchase_s)
        agg.last_cart_abandon_s = _opt_int(agg.last_cart_abandon_s)
        agg.last_answer_s = _opt_int(agg.last_answer_s)
        if agg.last_cart_abandon_amount is not None:
            agg.last_cart_abandon_amount = float(agg.last_cart_abandon_amount)
        agg.event_counts = {k: int(v) for k, v in agg.event_counts.items()}
        agg.channel_engagements = {k: int(v) for k, v in agg.channel_engagements.items()}
        agg.recent_products = [[p, t, int(s), int(q)] for p, t, s, q in agg.recent_products]
        agg.product_purchases = {k: [int(x) for x in v] for k, v in agg.product_purchases.items()}
        agg.unsubscribed = {k: int(v) for k, v in agg.unsubscribed.items()}
        agg.subscribed = {k: int(v) for k, v in agg.subscribed.items()}
        agg.offset_counts = {k: int(v) for k, v in agg.offset_counts.items()}
        agg.offset_spans = {k: [int(x) for x in v] for k, v in agg.offset_spans.items()}
        agg.purchase_days = {k: [int(v[0]), float(v[1])] for k, v in agg.purchase_days.items()}
        agg.orders = [[int(h), float(a)] for h, a in agg.orders]
        agg.stage_at = _opt_int(agg.stage_at)
        agg.points_lots = [[int(e), int(p)] for e, p in agg.points_lots]
        agg.points_earned, agg.points_spent = int(agg.points_earned), int(agg.points_spent)
        agg.points_expired = int(agg.points_expired)
        if "timezone_source" not in data and data.get("timezone", "UTC") != "UTC":
            agg.timezone_source = "profile"  # stored before inference existed: a zone other than UTC was given
        return agg

    @property
    def effective_timezone(self) -> str:
        """The zone local hours are counted and planned in: the profile's, else the one the offsets imply
        (:func:`zone_of_offsets`)."""
        if self.timezone_source == "profile":
            return self.timezone
        return zone_of_offsets(self.offset_counts, self.timezone, self.offset_spans)

    @property
    def has_data(self) -> bool:
        """Anything was learnt from events: engagements or counted events."""
        return self.engagement_moments > 0 or bool(self.event_counts)

    @property
    def last_engagement_h(self) -> int | None:
        """The latest engagement moment of the customer's own (UTC epoch hour)."""
        return self.recent_moments[-1] if self.recent_moments else None

    @property
    def last_engaged_s(self) -> int | None:
        """The latest engagement of any kind, a message's answers included (Unix seconds, the hour's start for a
        moment): what "days since the last engagement" counts from."""
        times = [t for t in (self.last_answer_s, _opt_mul(self.last_engagement_h, HOUR)) if t is not None]
        return max(times) if times else None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_mul(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor


def fold_events(
    agg: CustomerAggregates, events: Iterable[Event], counted: set[str]
) -> tuple[CustomerAggregates, set[str]]:
    """Apply new events to a customer's aggregates.

    Parameters
    ----------
    agg
        The aggregates so far; not modified.
    events
        Events of this customer that were never applied before (deduplicated by ``event_id``).
    counted
        Moment keys already counted for this customer (only those the events touch are needed).

    Returns
    -------
    tuple
        The new aggregates and the moment keys this fold counted for the first time.

    Example
    -------
    >>> agg, new = fold_events(CustomerAggregates(), events, counted=set())
    """
    out = _copy(agg)
    new_keys: set[str] = set()
    for ev in events:
        _apply(out, ev, counted, new_keys)
    return out, new_keys


def _copy(agg: CustomerAggregates) -> CustomerAggregates:
    # copy.deepcopy takes milliseconds for a customer with hundreds of products. The fields are
    # scalars or containers of scalars and of lists of scalars, so copying two levels is a deep copy.
    out = copy.copy(agg)
    for f in fields(agg):
        value = getattr(agg, f.name)
        if isinstance(value, list):
            setattr(out, f.name, [list(x) if isinstance(x, list) else x for x in value])
        elif isinstance(value, dict):
            setattr(out, f.name, {k: list(x) if isinstance(x, list) else x for k, x in value.items()})
    return out


def _apply(agg: CustomerAggregates, ev: Event, counted: set[str], new_keys: set[str]) -> None:
    secs = int(ev.timestamp.timestamp())
    h = epoch_hour(ev.timestamp)
    agg.event_counts[ev.type] = agg.event_counts.get(ev.type, 0) + 1

    if makes_moment(ev.type, ev.message_id):
        key = moment_key("m", h)
        if key not in counted and key not in new_keys:
            new_keys.add(key)
            agg.engagement_moments += 1
            if agg.timezone_source == "profile":
                agg.how_counts[epoch_hour_of_week(h, agg.timezone)] += 1
            else:
                offset = ev.timestamp.utcoffset()
                minutes = int(offset.total_seconds() // 60) if offset is not None else 0
                agg.offset_counts[str(minutes)] = agg.offset_counts.get(str(minutes), 0) + 1
                span = agg.offset_spans.setdefault(str(minutes), [h, h])
                span[0], span[1] = min(span[0], h), max(span[1], h)
                agg.how_counts[local_hour_of_week_at_offset(h, minutes)] += 1
            _insert_sorted_capped(agg.recent_moments, h, RECENT_MOMENTS)
    elif ev.message_id and ev.type in ENGAGEMENT_TYPES:
        agg.last_answer_s = secs if agg.last_answer_s is None else max(agg.last_answer_s, secs)
    if ev.channel and ev.type in MESSAGE_ENGAGEMENT:
        agg.channel_engagements[ev.channel] = agg.channel_engagements.get(ev.channel, 0) + 1

    if ev.type == "purchase":
        key = moment_key("p", h)
        day = agg.purchase_days.setdefault(datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%d"), [0, 0.0])
        if key not in counted and key not in new_keys:
            new_keys.add(key)
            agg.purchase_count += 1
            day[0] += 1
        amount = float(ev.amount) if ev.amount is not None else 0.0
        if ev.amount is not None:
            agg.monetary_total = round(agg.monetary_total + amount, 4)
            day[1] = round(day[1] + amount, 4)
        _add_order(agg, h, amount)
        if len(agg.purchase_days) > PURCHASE_DAYS:
            del agg.purchase_days[min(agg.purchase_days)]
        if agg.last_cart_abandon_s is not None and agg.last_cart_abandon_s <= secs:
            # The cart was bought: it is not abandoned any more.
            agg.last_cart_abandon_s = None
            agg.last_cart_abandon_amount = None
        agg.first_purchase_s = secs if agg.first_purchase_s is None else min(agg.first_purchase_s, secs)
        agg.last_purchase_s = secs if agg.last_purchase_s is None else max(agg.last_purchase_s, secs)
        if ev.product_id:
            _remember_purchase(agg, ev.product_id, secs, ev.quantity or 1)

    if (
        ev.type == "cart_abandon"
        and (agg.last_cart_abandon_s is None or secs >= agg.last_cart_abandon_s)
        and (agg.last_purchase_s is None or secs > agg.last_purchase_s)  # bought since: not abandoned
    ):
        agg.last_cart_abandon_s = secs
        agg.last_cart_abandon_amount = float(ev.amount) if ev.amount is not None else None

    # Training's column events carry no text or properties: the models do not read subscriptions.
    for key, off in subscription_changes(
        ev.type, ev.channel, getattr(ev, "text", None), getattr(ev, "properties", None)
    ):
        times = agg.unsubscribed if off else agg.subscribed
        times[key] = max(secs, times.get(key, secs))

    if ev.product_id and ev.type in PRODUCT_TYPES:
        entry = [ev.product_id, ev.type, secs, int(ev.quantity or 1)]
        _insert_by_time(agg.recent_products, entry, RECENT_PRODUCTS)

    properties = getattr(ev, "properties", None) or {}
    stage = properties.get("stage")
    if isinstance(stage, str) and stage and (agg.stage_at is None or secs >= agg.stage_at) and stage != agg.stage:
        # A later event in the same stage keeps the time the stage was reached; an older one changes nothing.
        agg.previous_stage, agg.stage, agg.stage_at = agg.stage, stage, secs

    if ev.type in LOYALTY_TYPES:
        apply_points(agg, ev.type, properties, secs)


def _add_order(agg: CustomerAggregates, epoch_h: int, amount: float) -> None:
    """Add a purchase line to its order (the customer's purchase moment), keeping the newest ``RECENT_ORDERS``."""
    i = bisect.bisect_left(agg.orders, epoch_h, key=lambda o: o[0])
    if i < len(agg.orders) and agg.orders[i][0] == epoch_h:
        agg.orders[i][1] = round(agg.orders[i][1] + amount, 4)
    else:
        agg.orders.insert(i, [epoch_h, round(amount, 4)])
        if len(agg.orders) > RECENT_ORDERS:
            del agg.orders[0]


def _remember_purchase(agg: CustomerAggregates, product_id: str, secs: int, qty: int) -> None:
    rec = agg.product_purchases.get(product_id)
    if rec is None:
        agg.product_purchases[product_id] = [1, secs, max(qty, 0), secs]
    else:
        rec[0] += 1
        rec[1] = max(rec[1], secs)
        rec[2] += max(qty, 0)
        if len(rec) > 3:  # a record from before the first purchase was kept learns no first purchase
            rec[3] = min(rec[3], secs)
    if len(agg.product_purchases) > PRODUCT_MEMORY:
        # Forget the product bought longest ago: the memory serves repeat and recency candidates.
        oldest = min(agg.product_purchases, key=lambda p: (agg.product_purchases[p][1], p))
        del agg.product_purchases[oldest]


def _insert_sorted_capped(values: list[int], value: int, cap: int) -> None:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    values.insert(lo, value)
    if len(values) > cap:
        del values[0]


def _time_order(e: list[Any]) -> tuple[Any, ...]:
    # Ties broken by content so that the order never depends on arrival order.
    return (e[2], e[0], e[1], e[3])


def _insert_by_time(values: list[list[Any]], entry: list[Any], cap: int) -> None:
    # Same order as appending and stable-sorting, without re-sorting the whole list per event.
    bisect.insort_right(values, entry, key=_time_order)
    if len(values) > cap:
        del values[0]


def rebucket(agg: CustomerAggregates, moments: Iterable[int], timezone: str) -> CustomerAggregates:
    """Recount the hour-of-week histogram in a given time zone (the profile's) from the stored moments."""
    out = copy.deepcopy(agg)
    out.timezone = timezone
    out.timezone_source = "profile"
    out.offset_counts = {}  # the zone is known: the offsets were only evidence for inferring it
    out.offset_spans = {}
    out.how_counts = [0] * HOURS_PER_WEEK
    for h in moments:
        out.how_counts[epoch_hour_of_week(h, timezone)] += 1
    return out


def unix_to_dt(secs: int | None) -> datetime | None:
    return None if secs is None else datetime.fromtimestamp(secs, UTC)


def hour_to_dt(epoch_h: int | None) -> datetime | None:
    return None if epoch_h is None else datetime.fromtimestamp(epoch_h * HOUR, UTC)
