"""Journey definitions: create, version and move through the lifecycle; read saved segments' filters."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from kairos.audiences.domain import Filter
from kairos.core.errors import ConflictError, InvalidInputError, NotFoundError
from kairos.journeys.domain import TRANSITIONS, JourneyIn
from kairos.journeys.graph import graph_errors

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.audiences.ports import SegmentStore
    from kairos.journeys.ports import JourneyStore


def validate(journey: JourneyIn) -> None:
    """Raise :class:`InvalidInputError` naming the node and field of the first problem in the graph."""
    errors = graph_errors(journey)
    if errors:
        field, reason = errors[0]
        raise InvalidInputError(field, reason)


def create_journey(journey: JourneyIn, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """Store a new journey as a ``draft`` (version 1); it lets nobody in until it is activated."""
    validate(journey)
    doc = {
        "journey_id": uuid.uuid4().hex,
        "status": "draft",
        "version": 1,
        "definition": journey.model_dump(mode="json", by_alias=True),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    store.create_journey(doc)
    return doc


def _not_a_campaign(doc: dict[str, Any]) -> None:
    """A campaign's journey follows its campaign: it changes through ``/v1/campaigns`` (create, cancel) only, so
    the campaign's definition and status always say what its journey does."""
    if doc.get("kind") == "campaign":
        raise InvalidInputError(
            "journey_id", f"journey {doc['journey_id']} runs a campaign: change it through /v1/campaigns"
        )


def update_journey(journey_id: str, journey: JourneyIn, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """A new version. Customers already on a path finish it on the version they entered; new entries use it."""
    validate(journey)
    for _ in range(5):
        current = store.get_journey(journey_id)
        _not_a_campaign(current)
        if current["status"] == "archived":
            raise InvalidInputError("status", "an archived journey cannot change")
        doc = {**current, "definition": journey.model_dump(mode="json", by_alias=True), "updated_at": now.isoformat()}
        try:
            store.put_version(doc, current["version"])
        except ConflictError:
            continue
        return store.get_journey(journey_id)
    raise ConflictError("the journey kept changing while it was updated")


def set_status(journey_id: str, status: str, store: JourneyStore, now: datetime) -> dict[str, Any]:
    """Move through draft -> active <-> paused -> archived; a move the lifecycle does not allow is a 400."""
    current = store.get_journey(journey_id)
    _not_a_campaign(current)
    allowed_from = tuple(s for s, moves in TRANSITIONS.items() if status in moves)
    if current["status"] == status:
        return current
    if current["status"] not in allowed_from:
        raise InvalidInputError("status", f"a {current['status']} journey cannot become {status}")
    store.set_journey_status(journey_id, status, allowed_from, now.isoformat())
    return store.get_journey(journey_id)


def segment_filters(segments: SegmentStore) -> Callable[[str], list[Filter] | None]:
    """A reader of saved segments' filters (``None`` for a segment that is gone), each read once: build one per
    invocation, so a batch or a scan evaluates every customer against the same filters, read once."""
    seen: dict[str, list[Filter] | None] = {}

    def read(name: str) -> list[Filter] | None:
        if name not in seen:
            try:
                seen[name] = [Filter.model_validate(f) for f in segments.get_segment(name).get("filters") or []]
            except NotFoundError:
                seen[name] = None
        return seen[name]

    return read
