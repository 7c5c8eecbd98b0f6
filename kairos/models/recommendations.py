"""Read the stored recommendation of a customer (the API side; scoring lives in ``kairos.models.scoring``).

Kept apart from scoring so that the API function does not import LightGBM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.errors import NotFoundError

if TYPE_CHECKING:
    from kairos.customers.ports import CustomerStore

POPULATION_KEY = "__population__"
SEGMENT_KEY_PREFIX = "__segment__#"


def get_recommendation(customer_id: str, store: CustomerStore) -> dict[str, Any]:
    """The stored answer for a customer; one not scored yet gets its segment's answer, else the population's.

    Raises
    ------
    NotFoundError
        The customer does not exist, or no model has scored anything yet.
    """
    record = store.get_customer(customer_id)
    if record is None or record.erased:
        raise NotFoundError(f"customer '{customer_id}' not found")
    if record.recommendation:
        return {"customer_id": customer_id, **record.recommendation, "scored": True}
    population = store.get_recommendation(POPULATION_KEY)
    if population is None:
        raise NotFoundError(f"customer '{customer_id}' exists but no model has scored yet: run the score function")
    attribute = population.get("segment_attribute")
    value = ((record.profile or {}).get("attributes") or {}).get(attribute) if attribute else None
    fallback = (store.get_recommendation(f"{SEGMENT_KEY_PREFIX}{value}") if isinstance(value, str) else None) or (
        population
    )
    fallback = {k: v for k, v in fallback.items() if k != "segment_attribute"}
    return {"customer_id": customer_id, **fallback, "scored": False}
