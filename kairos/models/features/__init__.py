"""Features of the Kairos models, computed from ``CustomerAggregates`` only.

This package is the single code path for features: ``training`` folds archived events into aggregates with
``kairos.customers.aggregates.fold_events`` and calls these functions, and the score function calls them on the
aggregates the ingest API keeps in DynamoDB. A feature that cannot be computed from the aggregates (plus
model-level artifacts: :class:`Priors`, :class:`ItemTable`; the ``as_of`` time; optional profile
attributes) does not exist.

- :mod:`kairos.models.features.send_time`: one row per (customer, local hour of week), ``TIME_FEATURES``; the
  model predicts the expected number of engagement moments at that hour in the coming weeks.
- :mod:`kairos.models.features.products`: one row per (customer, candidate product), ``PRODUCT_FEATURES``.
- :mod:`kairos.models.features.shared`: what both read (time units, normalizing counts); neither imports the
  other.

Everything is vectorized over customers so that the score function pays for numpy calls, not for Python
loops per hour or per product.
"""

from kairos.models.features.products import (
    PRODUCT_FEATURES,
    ItemTable,
    ProductCandidates,
    build_item_table,
    product_candidates,
)
from kairos.models.features.send_time import (
    DAYS,
    SEGMENT_ATTRIBUTE,
    TIME_FEATURES,
    Priors,
    build_priors,
    day_window,
    local_hours_of_week,
    segment_of,
    time_features,
)
from kairos.models.features.shared import HOURS_PER_DAY

__all__ = [
    "DAYS",
    "HOURS_PER_DAY",
    "PRODUCT_FEATURES",
    "SEGMENT_ATTRIBUTE",
    "TIME_FEATURES",
    "ItemTable",
    "Priors",
    "ProductCandidates",
    "build_item_table",
    "build_priors",
    "day_window",
    "local_hours_of_week",
    "product_candidates",
    "segment_of",
    "time_features",
]
