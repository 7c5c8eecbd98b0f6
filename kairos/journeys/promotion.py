"""Promote a content variant: by hand (the API), or by itself when a node's ``auto_promote`` test finds a winner.

A promoted variant takes all of its node's traffic from the next message on, paths already under way included
(the runner reads ``promoted`` from the journey's current document at every step). The automatic promotion runs
on the timer: at most once an hour per journey, for active journeys with an ``auto_promote`` node that has no
promoted variant; it reads the journey's results (its message log by the journey's index, never a scan) and
promotes the winner of :func:`kairos.journeys.variants.winner`. It never overrides a promotion made by hand.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.journeys.domain import JourneyIn
from kairos.journeys.results import journey_results
from kairos.journeys.variants import variant_nodes

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog

CHECK_EVERY = timedelta(hours=1)
STOP_MS = 15_000  # leave the timer's tick this much time: what is not checked now is checked at the next tick


def promote_variant(journey_id: str, node_id: str, variant: str | None, store: JourneyStore) -> dict[str, Any]:
    """Promote ``variant`` at the node (``None``: split the traffic by weight again).

    Parameters
    ----------
    journey_id, node_id
        The journey (a campaign's id is its journey's) and a node of its current version.
    variant
        One of the node's variant names, or ``None``.
    store
        The journey store.

    Returns
    -------
    dict
        ``{"journey_id", "node", "variant", "promoted"}``: ``promoted`` maps every promoted node to its variant.

    Raises
    ------
    NotFoundError
        No such journey, or no such node in its current version.
    InvalidInputError
        ``variant`` names no variant of the node (``field`` is ``variant``).

    Example
    -------
    >>> promote_variant(journey_id, "welcome", "B", store)["promoted"]
    {'welcome': 'B'}
    """
    doc = store.get_journey(journey_id)
    node = JourneyIn.model_validate(doc["definition"]).nodes.get(node_id)
    if node is None:
        raise NotFoundError(f"journey '{journey_id}' has no node '{node_id}'")
    names = [v.name for v in getattr(node, "variants", None) or []]
    if variant is not None and variant not in names:
        if not names:
            raise InvalidInputError("variant", f"node '{node_id}' has no content variants")
        raise InvalidInputError("variant", f"node '{node_id}' has no variant '{variant}' (it has {', '.join(names)})")
    store.set_promoted(journey_id, node_id, variant)
    promoted = store.get_journey(journey_id).get("promoted") or {}
    return {"journey_id": journey_id, "node": node_id, "variant": promoted.get(node_id), "promoted": promoted}


def promote_winners(
    store: JourneyStore,
    messages: MessageLog,
    customers: CustomerStore,
    now: datetime,
    journeys: list[dict[str, Any]] | None = None,
    time_left: Callable[[], int] | None = None,
) -> list[dict[str, str]]:
    """Promote the winner of every ``auto_promote`` node that has none promoted, at most once an hour per journey.

    Parameters
    ----------
    store, messages, customers
        The journey store, the message log and the customer store (opens, clicks and orders).
    now
        The time of the check (``variants_checked_at`` on the journey).
    journeys
        The active journeys' documents when the caller has read them already (else they are read).
    time_left
        Milliseconds the caller has left: the check stops with :data:`STOP_MS` left.

    Returns
    -------
    list of dict
        ``{"journey_id", "node", "variant"}`` of each promotion made.
    """
    made: list[dict[str, str]] = []
    for doc in journeys if journeys is not None else store.active_journeys():
        if time_left is not None and time_left() < STOP_MS:
            break
        if doc.get("status") != "active":
            continue
        promoted = doc.get("promoted") or {}
        nodes = variant_nodes(JourneyIn.model_validate(doc["definition"]))
        waiting = sorted(k for k, n in nodes.items() if n.auto_promote is not None and k not in promoted)
        checked = parse_ts(doc.get("variants_checked_at"))
        if not waiting or (checked is not None and now - checked < CHECK_EVERY):
            continue
        jid = doc["journey_id"]
        # Marked before the work: a journey whose results fail is looked at again in an hour, not every minute.
        store.set_variants_checked(jid, utc_iso(now))
        found = journey_results(jid, store, messages, customers)["variants_by_node"]
        for node_id in waiting:
            best = (found.get(node_id) or {}).get("winner")
            if best and store.set_promoted(jid, node_id, best, only_if_unset=True):
                made.append({"journey_id": jid, "node": node_id, "variant": best})
    return made
