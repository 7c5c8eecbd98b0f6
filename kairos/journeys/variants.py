"""Content variants of a message or cycle node: which one a path gets, how each did, and which one won.

Assignment: a path gets the node's promoted variant when it has one, else a variant drawn by weight with
``stable_unit("content-variant", journey, customer, entry, node)``: the same path gets the same variant on every
visit and every channel of a cycle, and the draw is independent of a ``random_split``'s (whose seed is
``journey-variant``), so the two can be combined without one deciding the other.

Results: per node and variant, from the message log (each record names its ``variant``): ``sends`` are
delivered messages (sent or unconfirmed), ``opens`` and ``clicks`` the delivered messages opened or clicked,
``conversions`` the orders credited (last touch) to a message of the variant, with their ``revenue``. Each rate
is per delivered message with its 95% Wilson interval.

Winner: the variant with the best rate on the metric wins when a one-sided two-proportion z-test (pooled
variance) finds it better than each other variant, Bonferroni-corrected: with ``k`` variants each of the
``k - 1`` comparisons must hold at level ``(1 - confidence) / (k - 1)``, so the chance of naming a winner
among equal variants stays at most ``1 - confidence`` per look. Nothing wins before every variant has
``min_sends`` delivered messages (a z-test needs counts, and early looks are the noisiest). Automatic promotion
looks once an hour; many looks at a test that keeps running raise its false-winner rate somewhat, which a
higher ``min_sends`` or ``confidence`` keeps down.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kairos.insights.stats import wilson
from kairos.journeys.domain import Cycle, Message
from kairos.journeys.variant_domain import AutoPromote
from kairos.messaging.domain import DELIVERED
from kairos.models.timing import stable_unit

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from kairos.journeys.domain import Journey, JourneyIn
    from kairos.journeys.variant_domain import ContentVariant
    from kairos.messaging.content import Messages

VARIANT_SEED = "content-variant"  # random_split draws with "journey-variant": the two draws are independent
METRICS = {"open": "opens", "click": "clicks", "conversion": "conversions"}
ENGAGED = {"opened": "opens", "clicked": "clicks"}


def choose_variant(
    node: Message | Cycle, promoted: str | None, journey_id: str, customer_id: str, entry_id: str, node_id: str
) -> ContentVariant | None:
    """The content variant a path gets at ``node`` (``None`` when the node has none).

    Parameters
    ----------
    node
        A message or cycle node.
    promoted
        The node's promoted variant: it takes all the traffic (a name the node no longer has is ignored).
    journey_id, customer_id, entry_id, node_id
        The path and the node: the draw is fixed by them.

    Returns
    -------
    ContentVariant or None
        The promoted variant, else one drawn by weight.

    Example
    -------
    >>> choose_variant(node, None, "j1", "c1", "e1", "welcome").name
    'B'
    """
    variants = node.variants
    if not variants:
        return None
    for v in variants:
        if v.name == promoted:
            return v
    draw = stable_unit(VARIANT_SEED, journey_id, customer_id, entry_id, node_id) * sum(v.weight for v in variants)
    acc = 0.0
    for v in variants:
        acc += v.weight
        if draw < acc:
            return v
    return variants[-1]  # a rounding error at the top end


def node_content(
    node: Message | Cycle, journey: Journey, customer_id: str, entry_id: str, node_id: str
) -> tuple[Messages, str | None]:
    """What a path sends at ``node``: its content, or its variant's content and the variant's name."""
    chosen = choose_variant(node, journey.promoted.get(node_id), journey.journey_id, customer_id, entry_id, node_id)
    if chosen is None:
        assert node.content is not None  # the node's validation: content or variants
        return node.content, None
    return chosen.content, chosen.name


def variant_nodes(definition: JourneyIn) -> dict[str, Message | Cycle]:
    """The definition's nodes that have content variants."""
    return {k: n for k, n in definition.nodes.items() if isinstance(n, Message | Cycle) and n.variants}


def _rate(hits: int, n: int) -> dict[str, float | None]:
    if not n:
        return {"value": None, "low": None, "high": None}
    low, high = wilson(hits, n)
    return {"value": round(hits / n, 6), "low": round(low, 6), "high": round(high, 6)}


def variant_results(
    records: Iterable[dict[str, Any]],
    engaged: Mapping[str, Collection[str]] | None = None,
    credited: Mapping[str, float] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per node and variant: sends, opens, clicks, conversions, revenue, and each rate with its 95% interval.

    Parameters
    ----------
    records
        The journey's message-log records; those without a ``variant`` are left out.
    engaged
        message id -> what the customer did with it (``opened``, ``clicked``).
    credited
        message id -> the revenue of the conversion credited to it (last touch).

    Returns
    -------
    dict
        ``{node: {variant: {"sends", "opens", "clicks", "conversions", "revenue", "open_rate",
        "click_rate", "conversion_rate"}}}``; a rate is ``{"value", "low", "high"}`` (``None`` without sends).
    """
    engaged, credited = engaged or {}, credited or {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for m in records:
        if not m.get("variant") or m.get("status") not in DELIVERED:
            continue
        row = out.setdefault(str(m.get("node")), {}).setdefault(str(m["variant"]), _empty())
        mid = str(m.get("message_id"))
        row["sends"] += 1
        for kind in engaged.get(mid, ()):
            if kind in ENGAGED:
                row[ENGAGED[kind]] += 1
        if mid in credited:
            row["conversions"] += 1
            row["revenue"] = round(row["revenue"] + float(credited[mid]), 2)
    for rows in out.values():
        for row in rows.values():
            with_rates(row)
    return out


def _empty() -> dict[str, Any]:
    return {"sends": 0, "opens": 0, "clicks": 0, "conversions": 0, "revenue": 0.0}


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    """Add ``open_rate``, ``click_rate`` and ``conversion_rate`` (per send, with 95% intervals) to ``row``."""
    for metric, key in METRICS.items():
        row[f"{metric}_rate"] = _rate(int(row[key]), int(row["sends"]))
    return row


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def beats(hits: int, n: int, other_hits: int, other_n: int) -> float:
    """Confidence that the first proportion is above the second: one minus the one-sided p-value of the
    two-proportion z-test with pooled variance (0.5 when the samples cannot tell them apart)."""
    if n <= 0 or other_n <= 0:
        return 0.5
    pooled = (hits + other_hits) / (n + other_n)
    if pooled <= 0 or pooled >= 1:
        return 0.5  # nobody (or everybody) did it in either group: no difference to see
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / other_n))
    return _phi((hits / n - other_hits / other_n) / se)


def winner(stats: Mapping[str, Mapping[str, Any]], metric: str, confidence: float, min_sends: int) -> str | None:
    """The variant that beats every other on ``metric`` with ``confidence``, or ``None``.

    Parameters
    ----------
    stats
        variant -> its counts (``sends`` and ``opens``/``clicks``/``conversions``), as :func:`variant_results`.
    metric
        ``open``, ``click`` or ``conversion``.
    confidence
        E.g. 0.95: each one-sided test of the best against another holds at ``(1 - confidence) / (k - 1)``.
    min_sends
        Every variant needs this many delivered messages before any wins.

    Example
    -------
    >>> winner({"A": {"sends": 500, "clicks": 20}, "B": {"sends": 500, "clicks": 60}}, "click", 0.95, 200)
    'B'
    """
    key = METRICS[metric]
    if len(stats) < 2 or any(int(s.get("sends", 0)) < max(min_sends, 1) for s in stats.values()):
        return None
    counts = {name: (int(s.get(key, 0)), int(s["sends"])) for name, s in stats.items()}
    best = max(sorted(counts), key=lambda name: counts[name][0] / counts[name][1])
    needed = 1 - (1 - confidence) / (len(counts) - 1)
    for name, (hits, n) in counts.items():
        if name != best and beats(*counts[best], hits, n) < needed:
            return None
    return best


def variants_by_node(
    definition: JourneyIn,
    records: Iterable[dict[str, Any]],
    promoted: Mapping[str, str] | None = None,
    engaged: Mapping[str, Collection[str]] | None = None,
    credited: Mapping[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The results of every node with content variants: each variant's counts and rates (one that sent nothing
    yet shows zeros; one only an earlier version had shows no weight), the promoted variant, and the winner by the
    node's ``auto_promote`` test (or the default test: clicks, 95%, 200 sends each)."""
    measured = variant_results(records, engaged, credited)
    promoted = promoted or {}
    out: dict[str, dict[str, Any]] = {}
    for node_id, node in sorted(variant_nodes(definition).items()):
        test = node.auto_promote or AutoPromote()
        rows = measured.get(node_id, {})
        current = {
            v.name: {"weight": v.weight, **(rows.get(v.name) or with_rates(_empty()))} for v in node.variants or []
        }
        # A variant an earlier version had still shows what it sent (no weight: it is not drawn any more).
        retired = {name: {"weight": None, **row} for name, row in sorted(rows.items()) if name not in current}
        out[node_id] = {
            "variants": current | retired,
            "promoted": promoted.get(node_id),
            "winner": winner(current, test.metric, test.confidence, test.min_sends),
            "test": test.model_dump(mode="json"),
        }
    return out
