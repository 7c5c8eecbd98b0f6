"""Advance function: one step of a customer's path through a journey (the journey step state machine's task).

Events:

- ``{"customer_id", "key", "seq"}``: run the step (:func:`kairos.logic.journeys.advance`); transient provider
  and store errors are raised for the state machine to retry with backoff.
- ``{"action": "failed", "customer_id", "key", "error": {"Error", "Cause"}}``: the step failed every retry;
  the path becomes ``failed`` with the error (the state machine then fails, and its alarm fires).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.logic.journeys import StepDeps, advance, fail_path
from kairos.logic.recommendations import POPULATION_KEY
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lru_cache(maxsize=1)
def deps() -> StepDeps:
    cfg = settings()
    customers = wiring.customer_store(cfg)
    return StepDeps(
        customers=customers,
        journeys=wiring.journey_store(cfg),
        campaigns=wiring.campaign_store(cfg),
        messages=wiring.message_log(cfg),
        providers=wiring.providers(cfg),
        tasks=wiring.task_sink(cfg),
        population=lambda: customers.get_recommendation(POPULATION_KEY),
        products=wiring.product_catalogue(cfg).get_products,
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = timeutil.now()
    if event.get("action") == "failed":
        error = event.get("error") or {}
        reason = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:400]}"
        marked = fail_path(event["customer_id"], event["key"], reason, deps().journeys, now)
        logger.error("journey step failed", extra={"key": event["key"], "marked": marked, "error": reason})
        metrics.add_metric(name="JourneyStepsFailed", unit=MetricUnit.Count, value=1)
        return {"failed": marked}
    result = advance(event["customer_id"], event["key"], int(event["seq"]), deps(), now)
    logger.info("journey step", extra={"key": event["key"], **result})
    return result
