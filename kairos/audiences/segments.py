"""Saved segments (named audiences): save, preview, delete (not while a journey or campaign uses one)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from kairos.audiences.matching import CustomerHistory, matches, needs_history
from kairos.audiences.sampling import SAMPLE_LIMIT, CustomerSample
from kairos.core.errors import InUseError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from kairos.audiences.domain import Filter, SegmentIn
    from kairos.audiences.ports import SegmentStore
    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog


def save_segment(segment: SegmentIn, store: SegmentStore, now: datetime) -> dict[str, Any]:
    """Save (create or replace) a named segment; returns the stored document with its ``updated_at``."""
    doc = {**segment.model_dump(mode="json"), "updated_at": now.isoformat()}
    store.put_segment(doc)
    return doc


PREVIEW_SAMPLE = 20


def every_item(list_page: Callable[[int, str | None], tuple[list[dict[str, Any]], str | None]]) -> Iterator[dict]:
    """Every item of a paged listing (``SegmentStore.list_campaigns``, ``JourneyStore.list_journeys``)."""
    token: str | None = None
    while True:
        page, token = list_page(100, token)
        yield from page
        if token is None:
            return


def preview_segment(
    filters: list[Filter],
    customers: CustomerStore,
    now: datetime,
    messages: MessageLog | None = None,
    sample: int = PREVIEW_SAMPLE,
    page_size: int = 1000,
    limit: int = SAMPLE_LIMIT,
) -> dict[str, Any]:
    """How many customers a segment holds now, and a sample of their ids (the first in id order).

    At most ``limit`` customers are read (:class:`~kairos.audiences.sampling.CustomerSample`): every customer of
    a smaller store, a sample of a larger one, whose count is scaled to the store (``estimate``). Counts over a
    window (``events.``, ``messages.``) read the history of the customers that reach them.
    """
    history = CustomerHistory(customers, messages) if needs_history(filters) else None
    read = CustomerSample(customers, limit, page_size)
    count = 0
    ids: list[str] = []
    for record in read:
        if matches(record, filters, now, history):
            count += 1
            bisect.insort(ids, record.customer_id)
            del ids[sample:]
    return {
        "count": count,
        "scanned": read.read,
        "sample": ids,
        "as_of": now.isoformat(),
        "estimate": read.estimate(count),
        **read.view(),
    }


def _names_segment(doc: Any, name: str) -> bool:
    """Whether a definition (nested dicts and lists) uses the segment ``name``."""
    if isinstance(doc, dict):
        if doc.get("segment") == name or (doc.get("field") == "segment" and doc.get("value") == name):
            return True
        return any(_names_segment(v, name) for v in doc.values())
    if isinstance(doc, list):
        return any(_names_segment(v, name) for v in doc)
    return False


def delete_segment(name: str, store: SegmentStore, journeys: JourneyStore | None = None) -> None:
    """Delete a saved segment, unless an active or paused journey or campaign uses it."""
    store.get_segment(name)
    users: list[str] = []
    for kind in ("journey", "campaign") if journeys is not None else ():
        users += [
            f"{kind} {j['journey_id']}"
            for j in every_item(lambda n, t, k=kind: journeys.list_journeys(n, t, k))  # type: ignore[union-attr]
            if j.get("status") in ("active", "paused") and _names_segment(j.get("definition"), name)
        ]
    if users:
        raise InUseError(f"segment '{name}' is used by {', '.join(sorted(users))}: stop or change them first")
    store.delete_segment(name)
