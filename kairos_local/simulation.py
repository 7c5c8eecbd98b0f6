"""The simulated population of the closed-loop demo, drawn from real customers of Online Retail II.

Where the customers come from
    UCI Online Retail II (CC BY 4.0; donated by Dr Daqing Chen, London South Bank University; Chen, Sain & Guo
    2012), read from ``../shared/data/online_retail_ii`` (or ``$KAIROS_SHARED_DATA``), else the small committed
    cut in ``tests/data``. Each simulated customer is one real customer with at least ``MIN_MOMENTS`` distinct
    invoice hours; past that pool, customers are reused under new ids.

Rhythm (the latent truth the model has to learn)
    The real customer's invoice hours as a 168-bucket hour-of-week histogram in local wall-clock time (the
    invoices are UK local time), blurred by one hour either side and mixed with 15% of the population's
    histogram, so hours they never used are unlikely but possible. ``rhythm`` sums to 1.

Time zones
    A documented mix: 50% Europe/London, 20% America/New_York, 10% America/Los_Angeles, 10% Europe/Berlin,
    10% Asia/Tokyo. The rhythm is local, so the zone moves it in UTC (daylight saving included).

Activity, channels, products
    ``activity``: engagement moments per week, from the real invoice rate (x2, clipped to 0.3..4).
    ``channel_affinity``: base open propensity per channel (email 0.25..0.55, push 0.15..0.40, sms 0.10..0.30).
    Consent: email always; push 70%, sms 50%; messenger never (no Telegram bot locally).
    ``products``: the real customer's most bought stock codes.

Response model
    A message delivered at local hour-of-week ``h`` is opened with probability
    ``affinity[channel] * (0.15 + 0.85 * near[h] / max(near))``, where ``near`` is the rhythm summed over
    ``h-1..h+1``: a message at the customer's best hour is opened about three to six times as often as one
    at a dead hour. An open follows the delivery by 1 to 180 minutes (exponential, mean 40); a click follows
    an open with probability 0.35, a purchase of a liked product follows a click with probability 0.25.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kairos.core.timeutil import zone

HOURS = 168
MIN_MOMENTS = 8
ZONES = (
    ("Europe/London", 0.5),
    ("America/New_York", 0.2),
    ("America/Los_Angeles", 0.1),
    ("Europe/Berlin", 0.1),
    ("Asia/Tokyo", 0.1),
)
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Lena")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SimCustomer:
    customer_id: str
    timezone: str
    profile: dict[str, Any]
    rhythm: np.ndarray
    activity: float
    channel_affinity: dict[str, float]
    products: list[str]
    prices: dict[str, float] = field(default_factory=dict)

    @property
    def near(self) -> np.ndarray:
        """The rhythm summed over the hour before, the hour itself and the hour after."""
        r = self.rhythm
        return r + np.roll(r, 1) + np.roll(r, -1)


def _data_files() -> list[Path]:
    base = Path(os.environ.get("KAIROS_SHARED_DATA") or ROOT.parent / "shared" / "data") / "online_retail_ii"
    files = sorted(base.glob("online_retail_2010-12_2011-12.csv*")) if base.is_dir() else []
    return files or [ROOT / "tests" / "data" / "online_retail_sample.csv.gz"]


@dataclass
class _Source:
    customer: str
    country: str
    hours: Counter[int]
    moments: int
    weeks: float
    products: list[str]
    prices: dict[str, float]


@lru_cache(maxsize=2)
def _sources(files: tuple[Path, ...]) -> tuple[list[_Source], np.ndarray]:
    """Real customers with enough distinct invoice hours, and the population's hour-of-week histogram."""
    moments: dict[str, set[str]] = defaultdict(set)
    country: dict[str, str] = {}
    bought: dict[str, Counter[str]] = defaultdict(Counter)
    price: dict[str, float] = {}
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                cust, invoice = row["CustomerID"], row["Invoice"]
                if not cust or invoice.startswith("C"):
                    continue
                cust = cust.split(".")[0]
                moments[cust].add(row["InvoiceDate"][:13])  # one moment per customer and hour
                country[cust] = row["Country"]
                code = row["StockCode"]
                if code[:1].isdigit():
                    bought[cust][code] += 1
                    price.setdefault(code, float(row["Price"] or 0) or 1.0)
    pop = np.zeros(HOURS)
    out = []
    for cust in sorted(moments):
        stamps = sorted(moments[cust])
        hours: Counter[int] = Counter()
        for s in stamps:
            t = datetime.strptime(s, "%Y-%m-%d %H")
            hours[t.weekday() * 24 + t.hour] += 1
        for h, n in hours.items():
            pop[h] += n
        if len(stamps) < MIN_MOMENTS or not bought[cust]:
            continue
        first, last = datetime.strptime(stamps[0], "%Y-%m-%d %H"), datetime.strptime(stamps[-1], "%Y-%m-%d %H")
        weeks = max((last - first).days / 7, 4.0)
        top = [p for p, _ in bought[cust].most_common(8)]
        out.append(_Source(cust, country[cust], hours, len(stamps), weeks, top, {p: price[p] for p in top}))
    return out, pop / pop.sum()


def _rhythm(hours: Counter[int], pop: np.ndarray) -> np.ndarray:
    hist = np.zeros(HOURS)
    for h, n in hours.items():
        hist[h] = n
    hist = hist / hist.sum()
    blurred = 0.5 * hist + 0.25 * np.roll(hist, 1) + 0.25 * np.roll(hist, -1)
    r = 0.85 * blurred + 0.15 * pop + 0.001 / HOURS  # nobody is certain never to look
    return r / r.sum()


def build_population(n: int, seed: int) -> list[SimCustomer]:
    """``n`` simulated customers, the same for the same seed."""
    sources, pop = _sources(tuple(_data_files()))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources))
    zones = [z for z, _ in ZONES]
    weights = np.array([w for _, w in ZONES])
    out = []
    for i in range(n):
        src = sources[int(order[i % len(order)])]
        tz = zones[int(rng.choice(len(zones), p=weights))]
        cid = f"sim-{i:06d}"
        consent = {"email": True, "push": bool(rng.random() < 0.7), "sms": bool(rng.random() < 0.5), "messenger": False}
        contact: dict[str, Any] = {"email": f"{cid}@example.com"}
        if consent["push"]:
            contact["push_token"] = f"fcm-{cid}"
        if consent["sms"]:
            contact["phone"] = f"+4477009{i % 100000:05d}"
        profile = {
            "attributes": {
                "country": src.country,
                "source_customer": src.customer,
                "first_name": FIRST_NAMES[i % len(FIRST_NAMES)],
            },
            "contact": contact,
            "consent": consent,
        }
        out.append(
            SimCustomer(
                customer_id=cid,
                timezone=tz,
                profile=profile,
                rhythm=_rhythm(src.hours, pop),
                activity=float(np.clip(2 * src.moments / src.weeks, 0.3, 4.0)),
                channel_affinity={
                    "email": float(rng.uniform(0.25, 0.55)),
                    "push": float(rng.uniform(0.15, 0.40)),
                    "sms": float(rng.uniform(0.10, 0.30)),
                    "messenger": 0.0,
                },
                products=list(src.products),
                prices=dict(src.prices),
            )
        )
    return out


def true_best_hour(c: SimCustomer) -> int:
    """The local hour of week at which a message is most likely to be opened."""
    return int(np.argmax(c.near))


def expected_open_probability(c: SimCustomer, channel: str, how: int) -> float:
    near = c.near
    return float(c.channel_affinity.get(channel, 0.0) * (0.15 + 0.85 * near[how % HOURS] / near.max()))


def _local_how(t: datetime, tz: str) -> int:
    local = t.astimezone(zone(tz))
    return local.weekday() * 24 + local.hour


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big"))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).replace(microsecond=0).isoformat()


def respond(c: SimCustomer, message_id: str, channel: str, delivered_at: datetime, seed: int) -> list[dict[str, Any]]:
    """What the customer does about a message delivered at ``delivered_at``: events in the API's schema."""
    rng = _rng(seed, message_id)
    p = expected_open_probability(c, channel, _local_how(delivered_at, c.timezone))
    if rng.random() >= p:
        return []
    base = {"customer_id": c.customer_id, "channel": channel, "message_id": message_id}
    opened = delivered_at + timedelta(minutes=float(np.clip(rng.exponential(40.0), 1.0, 180.0)))
    out = [{**base, "event_id": f"{message_id}:open", "type": "message_open", "timestamp": _iso(opened)}]
    if rng.random() < 0.35:
        clicked = opened + timedelta(minutes=float(rng.uniform(0.5, 5.0)))
        out.append({**base, "event_id": f"{message_id}:click", "type": "message_click", "timestamp": _iso(clicked)})
        if rng.random() < 0.25 and c.products:
            product = c.products[int(rng.integers(0, min(3, len(c.products))))]
            qty = int(rng.integers(1, 13))
            out.append(
                {
                    **base,
                    "event_id": f"{message_id}:purchase",
                    "type": "purchase",
                    "timestamp": _iso(clicked + timedelta(minutes=float(rng.uniform(2.0, 20.0)))),
                    "product_id": product,
                    "quantity": qty,
                    "amount": round(qty * c.prices.get(product, 1.0), 2),
                    "currency": "GBP",
                }
            )
    return out


def history_events(customers: list[SimCustomer], start: datetime, end: datetime, seed: int) -> list[dict[str, Any]]:
    """Organic activity between ``start`` and ``end``, drawn from each customer's rhythm in local time."""
    weeks = (end - start).total_seconds() / (7 * 86400)
    out: list[dict[str, Any]] = []
    for i, c in enumerate(customers):
        rng = np.random.default_rng([seed, i])
        tz = zone(c.timezone)
        local_start = start.astimezone(tz)
        monday = (local_start - timedelta(days=local_start.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        n = int(rng.poisson(c.activity * weeks))
        hows = rng.choice(HOURS, size=n, p=c.rhythm)
        offsets = rng.integers(0, int(np.ceil(weeks)) + 1, size=n)
        minutes = rng.integers(0, 60, size=n)
        k = 0
        for how, week, minute in zip(hows, offsets, minutes, strict=True):
            day = monday.date() + timedelta(days=int(week) * 7 + int(how) // 24)
            local = datetime(day.year, day.month, day.day, int(how) % 24, int(minute), tzinfo=tz)
            t = local.astimezone(UTC)
            if not (start <= t < end - timedelta(minutes=30)):
                continue
            base = {"customer_id": c.customer_id}
            out.append({**base, "event_id": f"h{seed}-{c.customer_id}-{k}", "type": "session", "timestamp": _iso(t)})
            k += 1
            if c.products and rng.random() < 0.3:
                product = c.products[int(rng.integers(0, len(c.products)))]
                out.append(
                    {
                        **base,
                        "event_id": f"h{seed}-{c.customer_id}-{k}",
                        "type": "product_view",
                        "timestamp": _iso(t + timedelta(minutes=2)),
                        "product_id": product,
                    }
                )
                k += 1
                if rng.random() < 0.4:
                    qty = int(rng.integers(1, 13))
                    out.append(
                        {
                            **base,
                            "event_id": f"h{seed}-{c.customer_id}-{k}",
                            "type": "purchase",
                            "timestamp": _iso(t + timedelta(minutes=6)),
                            "product_id": product,
                            "quantity": qty,
                            "amount": round(qty * c.prices.get(product, 1.0), 2),
                            "currency": "GBP",
                        }
                    )
                    k += 1
    return out
