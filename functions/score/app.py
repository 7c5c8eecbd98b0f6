"""Score function: best send hour, hour scores and next products for customers, written to their profiles.

Events (from the ScoreAll state machine, a schedule, or by hand):

- ``{"customer_ids": ["c1", ...]}``: score these customers.
- ``{"shard": 0, "total_shards": 4, "cursor": null}``: score one shard of a parallel scan, resuming after
  ``cursor``; returns the next cursor and ``done``.
- ``{"fallbacks": true}``: store the population and segment answers for customers not scored yet.
- ``{"plan": true, "min_shards": 4}``: how many shards the run uses, from the number of customers.
- ``{"rfm_pass": true, "shard": 0, "total_shards": 4, "cursor": null}``: read one shard's purchasers for the
  run's RFM cut points, resuming after ``cursor``; ``{"rfm_merge": true}`` merges the shards' parts.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kairos import wiring
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.observability import logger, metrics, tracer
from kairos.models import rfm_pass, scoring
from kairos.models.serving import KairosModel

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.customers.ports import CustomerStore
    from kairos.insights.ports import InsightStore
    from kairos.models.adapters.model_store import ModelSource
    from kairos.models.ports import ProductCatalogue

# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "events_table",
    "customers_table",
    "insights_table",
    "products_table",
)


# The default model ships inside the function package (see functions/score/Makefile); a checkout uses models/.
BUNDLED = next(
    (
        p
        for p in (Path(__file__).parent / "model", Path(__file__).resolve().parents[2] / "models" / "default")
        if (p / "metadata.json").exists()
    ),
    Path(__file__).parent / "model",
)


@lru_cache(maxsize=1)
def store() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def insight_store() -> InsightStore:
    return wiring.insight_store(settings())


@lru_cache(maxsize=1)
def catalogue() -> ProductCatalogue:
    return wiring.product_catalogue(settings())


@lru_cache(maxsize=1)
def models() -> ModelSource:
    return wiring.model_source(settings(), KairosModel.load, BUNDLED)


def handle(event: dict[str, Any], time_left_ms: Any) -> dict[str, Any]:
    source = models()
    model = source.current()
    as_of = datetime.fromisoformat(event["as_of"]) if event.get("as_of") else timeutil.now()
    if event.get("fallbacks"):
        result: dict[str, Any] = {"fallbacks": scoring.store_fallbacks(store(), model, as_of, source.version)}
    elif event.get("rfm_pass"):
        result = rfm_pass.rfm_pass(
            store(),
            insight_store(),
            as_of,
            int(event.get("shard", 0)),
            int(event.get("total_shards", 1)),
            event.get("cursor"),
            time_left_ms,
            int(event.get("page_size", 1000)),
        )
    elif event.get("plan"):
        result = scoring.plan_shards(store(), int(event.get("min_shards", 1)))
    elif event.get("rfm_merge"):
        result = {"rfm_purchasers": rfm_pass.merge_rfm(insight_store(), as_of)}
    elif "customer_ids" in event:
        result = scoring.score_customers(
            list(event["customer_ids"]), store(), model, as_of, source.version, catalogue()
        )
    else:
        result = scoring.score_shard(
            store(),
            model,
            as_of,
            int(event.get("shard", 0)),
            int(event.get("total_shards", 1)),
            event.get("cursor"),
            time_left_ms,
            int(event.get("page_size", 500)),
            model_source=source.version,
            insight_store=insight_store(),
            catalogue=catalogue(),
        )
    result["model_version"] = model.version
    result["as_of"] = as_of.isoformat()
    return result


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle(event, context.get_remaining_time_in_millis)
    metrics.add_metric(name="CustomersScored", unit="Count", value=result.get("scored", 0))
    logger.info("scored", extra={k: v for k, v in result.items() if k != "missing"})
    return result
