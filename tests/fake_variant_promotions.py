"""The in-memory side of :class:`kairos.journeys.ports.VariantPromotions`, mixed into the fake journey store
(:class:`tests.fakes.InMemoryJourneyStore`), whose ``journeys`` dict of current documents it writes."""

from __future__ import annotations

from typing import Any

from kairos.core.errors import NotFoundError
from kairos.journeys.ports import VariantPromotions


class InMemoryVariantPromotions(VariantPromotions):
    """``promoted`` and ``variants_checked_at`` on the current journey document, as the DynamoDB adapter keeps
    them on the journey's current item (every version reads them)."""

    journeys: dict[str, dict[str, Any]]

    def set_promoted(self, journey_id: str, node_id: str, variant: str | None, only_if_unset: bool = False) -> bool:
        doc = self.journeys.get(journey_id)
        if doc is None:
            raise NotFoundError(journey_id)
        promoted = doc.setdefault("promoted", {})
        if only_if_unset and node_id in promoted:
            return False
        if variant is None:
            promoted.pop(node_id, None)
        else:
            promoted[node_id] = variant
        return True

    def set_variants_checked(self, journey_id: str, at_iso: str) -> None:
        if journey_id not in self.journeys:
            raise NotFoundError(journey_id)
        self.journeys[journey_id]["variants_checked_at"] = at_iso
